"""The live feed: one Redis subscription fanned out to every SSE client of the gateway.

One pub/sub connection listens to `channel:control:responses` (lifecycle events and command
responses) and `PSUBSCRIBE channel:alerts:*` (alerts of every exchange); each message is validated
against its `messages` struct, re-encoded on one line and queued to every connected client as a
Server-Sent Event (`event: lifecycle|response|alert`). A client too slow to keep up is dropped
(its EventSource reconnects and reloads recent history over the REST API) rather than letting its
queue grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import msgspec
import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from livermore_common import messages
from livermore_common.keys import KeySpace
from livermore_common.logs import get_logger
from livermore_common.messages import Alert, LifecycleEvent

_log = get_logger(__name__)
_CLOSED = b""  # queued to a subscriber to end its stream


def sse_frame(event: str, data: bytes) -> bytes:
    """One SSE message; `data` must be a single line (re-encoded JSON always is)."""
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


def to_frame(channel: str, data: bytes, alert_pattern_prefix: str) -> bytes | None:
    """Validate a Redis message and turn it into an SSE frame; None for a malformed payload."""
    try:
        if channel.startswith(alert_pattern_prefix):
            return sse_frame("alert", messages.encode(messages.decode(data, Alert)))
        message = messages.decode_response(data)
    except (msgspec.MsgspecError, UnicodeDecodeError):
        return None
    kind = "lifecycle" if isinstance(message, LifecycleEvent) else "response"
    return sse_frame(kind, messages.encode(message))


class Subscriber:
    """One SSE client's queue of frames; `b""` means the stream is over."""

    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize)

    def offer(self, frame: bytes) -> bool:
        """Queue a frame; False when the client is too slow (its stream is then ended)."""
        try:
            self.queue.put_nowait(frame)
            return True
        except asyncio.QueueFull:
            return False

    def close(self) -> None:
        if self.queue.full():
            # Make room so the end marker gets through even to a stalled client.
            self.queue.get_nowait()
        self.queue.put_nowait(_CLOSED)

    async def next(self, timeout: float) -> bytes | None:
        """The next frame, `b""` when closed, or None when `timeout` passed with nothing."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


class EventHub:
    """Owns the Redis subscription; `start()` returns once Redis confirmed every subscription."""

    def __init__(self, redis: aioredis.Redis, keys: KeySpace, *, queue_size: int = 1000) -> None:
        self._redis = redis
        self._keys = keys
        self._queue_size = queue_size
        self._subscribers: set[Subscriber] = set()
        self._pubsub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._alert_prefix = keys.alerts_channel_pattern().rstrip("*")
        self.dropped = 0  # malformed payloads seen

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    async def start(self) -> None:
        self._pubsub = await self._subscribe()
        self._task = asyncio.create_task(self._run(), name="gateway-event-hub")

    async def _subscribe(self) -> Any:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._keys.control_responses_channel)
        await pubsub.psubscribe(self._keys.alerts_channel_pattern())
        confirmed = 0
        async with asyncio.timeout(10):
            while confirmed < 2:
                msg = await pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0)
                if msg is not None and msg["type"] in ("subscribe", "psubscribe"):
                    confirmed += 1
        return pubsub

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                if self._pubsub is None:
                    self._pubsub = await self._subscribe()
                    backoff = 0.5
                    # Events published while disconnected are lost: tell clients to reload.
                    self.broadcast(sse_frame("resync", b"{}"))
                await self._pump()
            except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
                _log.warning("live feed lost its Redis subscription; retrying", error=str(exc))
                pubsub, self._pubsub = self._pubsub, None
                if pubsub is not None:
                    with contextlib.suppress(RedisError, OSError):
                        await pubsub.aclose()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _pump(self) -> None:
        while True:
            msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if msg is None or msg["type"] not in ("message", "pmessage"):
                continue
            channel = msg["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else str(channel)
            frame = to_frame(channel, msg["data"], self._alert_prefix)
            if frame is None:
                self._note_malformed(channel)
                continue
            self.broadcast(frame)

    def _note_malformed(self, channel: str) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            _log.warning(
                "dropped malformed message from the live feed",
                channel=channel,
                dropped=self.dropped,
            )

    def broadcast(self, frame: bytes) -> None:
        for sub in list(self._subscribers):
            if not sub.offer(frame):
                _log.info("live-feed client too slow; closing its stream")
                self._subscribers.discard(sub)
                sub.close()

    @contextlib.contextmanager
    def subscription(self) -> Iterator[Subscriber]:
        sub = Subscriber(self._queue_size)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    def close_subscribers(self) -> None:
        """End every client's stream (on shutdown, so open SSE responses do not hold it up)."""
        for sub in list(self._subscribers):
            sub.close()
        self._subscribers.clear()

    async def aclose(self) -> None:
        self.close_subscribers()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            await pubsub.aclose()


HUB = web.AppKey("event_hub", EventHub)
KEEPALIVE_SECONDS = 15.0
_HELLO = sse_frame("hello", b'{"feed":"lifecycle,response,alert"}')


async def events_handler(request: web.Request) -> web.StreamResponse:
    """GET /api/events: Server-Sent Events until the client leaves or the gateway stops."""
    hub = request.app[HUB]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            # Proxies such as nginx would otherwise buffer the stream.
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    # Subscribe before `hello`: whatever is published after a client saw it reaches that client.
    with hub.subscription() as sub:
        try:
            await response.write(b"retry: 2000\n" + _HELLO)
            while True:
                frame = await sub.next(KEEPALIVE_SECONDS)
                if frame == _CLOSED:
                    break
                await response.write(b": keepalive\n\n" if frame is None else frame)
        except ConnectionResetError:
            pass  # the client went away
    return response
