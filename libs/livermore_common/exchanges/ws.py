"""WebSocket plumbing shared by the venues: a connection that reports pings, and a feed base.

Pings: `websockets` answers protocol pings itself (its sans-I/O layer queues the pong as soon as
the PING frame is parsed), so nothing here sends pongs. To refresh `last_heartbeat` on every ping
(EXC-04) `ObservedConnection` overrides `process_event`, the one place every incoming frame
passes, and calls `on_ping`; it also stamps `last_activity` for stall detection.

Feeds: socket reader tasks turn frames into events and put them on one bounded queue (a slow
consumer slows the readers, and TCP backpressure does the rest); iterating the feed yields them.
A reader that loses its socket unexpectedly ends the iteration with `TransientError`.
Oversized frames: above `max_frame_bytes` a frame is dropped and counted, the connection lives
on; above `hard_max_frame_bytes` `websockets` itself closes the connection (memory guard).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode, Frame, Opcode

from livermore_common.errors import LivermoreError, TransientError
from livermore_common.exchanges.base import (
    AdapterOptions,
    FeedDropped,
    FeedEvent,
    FeedStats,
    Heartbeat,
)
from livermore_common.logs import get_logger

FrameHandler = Callable[["ObservedConnection", "str | bytes"], "list[FeedEvent] | None"]


class ObservedConnection(ClientConnection):
    """A client connection that reports protocol pings and the time of the last frame."""

    on_ping: Callable[[], None] | None = None
    last_activity: float = 0.0

    def process_event(self, event: Any) -> None:
        super().process_event(event)
        if isinstance(event, Frame):
            self.last_activity = self.loop.time()
            if event.opcode is Opcode.PING and self.on_ping is not None:
                self.on_ping()


async def open_socket(url: str, options: AdapterOptions, **kw: Any) -> ObservedConnection:
    """Connect (TransientError on failure); `max_size` is the hard cap, not the drop threshold."""
    try:
        conn = await connect(
            url,
            create_connection=ObservedConnection,
            max_size=options.hard_max_frame_bytes,
            open_timeout=options.open_timeout_s,
            close_timeout=2.0,
            compression=None,  # venue frames are small; deflate would only cost CPU
            **kw,
        )
    except (OSError, TimeoutError, websockets.WebSocketException) as exc:
        host = url.split("?", 1)[0]
        raise TransientError(f"cannot connect to {host}: {type(exc).__name__}: {exc}") from None
    assert isinstance(conn, ObservedConnection)
    conn.last_activity = conn.loop.time()
    return conn


class _End:
    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class FeedBase:
    """Queue, stats, reader and watchdog tasks, and the iteration/close protocol of a feed."""

    stall_timeout_default = 60.0

    def __init__(self, *, venue: str, options: AdapterOptions) -> None:
        self.venue = venue
        self.options = options
        self.stats = FeedStats()
        self.log = get_logger("livermore.exchanges", exchange=venue)
        self._queue: asyncio.Queue[FeedEvent | _End] = asyncio.Queue(maxsize=options.queue_size)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ended = False
        self._closed = False
        self._logged_reasons: set[str] = set()

    @property
    def closed(self) -> bool:
        return self._closed

    # ---- consumer side --------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[FeedEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[FeedEvent]:
        queue = self._queue
        while True:
            item = await queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item

    async def aclose(self) -> None:
        """Stop every task and socket; a consumer still iterating sees the end. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._ended = True
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._close_sockets()
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(_End(None))

    async def __aenter__(self) -> FeedBase:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # ---- producer side --------------------------------------------------------------------

    async def _close_sockets(self) -> None:
        raise NotImplementedError

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=f"{self.venue}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _emit(self, event: FeedEvent) -> None:
        await self._queue.put(event)

    async def _fail(self, error: LivermoreError) -> None:
        """End the iteration with `error` (first failure wins)."""
        if self._ended:
            return
        self._ended = True
        self.log.warning("feed failed", error=str(error))
        await self._queue.put(_End(error))

    def dropped(self, reason: str) -> FeedDropped:
        """Count a rejected frame; log the first of each kind only (hostile input is loud)."""
        self.stats.dropped += 1
        kind = reason.split(":", 1)[0]
        if kind not in self._logged_reasons:
            self._logged_reasons.add(kind)
            self.log.warning("frame dropped", reason=reason[:300])
        return FeedDropped(reason=reason[:300])

    def _on_ping(self) -> None:
        self.stats.pings += 1
        self.stats.heartbeats += 1
        # Called synchronously from the protocol: never block; a full queue means the consumer
        # is behind on data anyway, and the next data frame proves liveness.
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(Heartbeat())

    async def _read(self, conn: ObservedConnection, handle: FrameHandler) -> None:
        """Pump one socket until it closes; oversized frames are dropped before parsing."""
        limit = self.options.max_frame_bytes
        stats = self.stats
        async for message in conn:
            stats.frames += 1
            if len(message) > limit:
                stats.oversized += 1
                await self._emit(self.dropped(f"oversized: {len(message)} bytes > {limit}"))
                continue
            events = handle(conn, message)
            if events:
                for event in events:
                    await self._queue.put(event)

    async def _pump_socket(self, conn: ObservedConnection, handle: FrameHandler) -> str:
        """Read `conn` until it closes; return why it closed (for the TransientError)."""
        try:
            await self._read(conn, handle)
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:
                # Above the hard cap `websockets` fails the connection itself.
                self.stats.oversized += 1
                hard = self.options.hard_max_frame_bytes
                await self._emit(self.dropped(f"oversized: a frame above {hard} bytes"))
                return "closed after a frame above the hard size limit"
        return f"closed (code {conn.close_code})"

    async def _watch(
        self, conn: ObservedConnection, timeout: float, on_stall: Callable[[], None]
    ) -> None:
        """Close `conn` when nothing (no frame, no ping) arrived for `timeout` seconds."""
        while True:
            idle = conn.loop.time() - conn.last_activity
            if idle >= timeout:
                self.stats.stalls += 1
                on_stall()
                await conn.close()
                return
            await asyncio.sleep(max(0.05, timeout - idle))
