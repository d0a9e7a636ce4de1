"""WebSocket plumbing shared by the venues: a connection that reports pings, and a feed base.

Pings: `websockets` answers protocol pings itself (its sans-I/O layer queues the pong as soon as
the PING frame is parsed), so nothing here sends pongs. To refresh `last_heartbeat` on every ping
(EXC-04) `ObservedConnection` overrides `process_event`, the one place every incoming frame
passes, and calls `on_ping`; it also stamps `last_activity` for stall detection.

Fast path (`open_socket(..., on_frame=...)`): after the handshake, complete unfragmented data
frames are cut out of each TCP read here and handed to `on_frame` synchronously, in order, as one
list per read, skipping `websockets`' per-frame parser and message queue (most of the cost at
100,000+ frames/s).
Control frames are handed to `websockets` one whole frame at a time, so pings, pongs and the close
handshake work as before; anything unusual (fragments, extension bits, masked or over-cap frames)
hands the rest of the connection back to `websockets` for good.

Feeds: socket readers turn frames into events and put them on one queue, bounded by
`queue_size`: a full queue pauses the fast-path sockets' reading and makes the other readers wait
(a slow consumer slows the readers, and TCP backpressure does the rest); iterating the feed yields
them. A reader that loses its socket unexpectedly ends the iteration with `TransientError`.
Oversized frames: above `max_frame_bytes` a frame is dropped and counted, the connection lives
on; above `hard_max_frame_bytes` `websockets` itself closes the connection (memory guard).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State

from livermore_common.errors import LivermoreError, TransientError
from livermore_common.exchanges.base import (
    AdapterOptions,
    FeedDropped,
    FeedEvent,
    FeedStats,
    Heartbeat,
)
from livermore_common.exchanges.tls import client_context
from livermore_common.logs import get_logger

FrameHandler = Callable[["ObservedConnection", "str | bytes"], "list[FeedEvent] | None"]


# Called with the data frames' payloads of one TCP read (in order, never empty).
FrameSink = Callable[["ObservedConnection", list[bytes]], None]
_DATA_FRAMES = frozenset((0x81, 0x82))  # FIN + text, FIN + binary, no extension bits
_CONTROL_FRAMES = frozenset((0x88, 0x89, 0x8A))  # FIN + close, ping, pong
_KNOWN_FRAMES = _DATA_FRAMES | _CONTROL_FRAMES


class ObservedConnection(ClientConnection):
    """A client connection that reports protocol pings and the time of the last frame, with an
    optional fast path for data frames (see the module docstring)."""

    on_ping: Callable[[], None] | None = None
    last_activity: float = 0.0

    def __init__(self, *args: Any, on_frame: FrameSink | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_frame = on_frame
        self._fast = on_frame is not None
        self._tail = b""  # an incomplete frame (fast path), or the handshake's last bytes

    def process_event(self, event: Any) -> None:
        super().process_event(event)
        if isinstance(event, Frame):
            self.last_activity = self.loop.time()
            if event.opcode is Opcode.PING and self.on_ping is not None:
                self.on_ping()

    def data_received(self, data: bytes) -> None:
        if not self._fast:
            super().data_received(data)
        elif self.protocol.state is State.OPEN:
            self.last_activity = self.loop.time()
            self._split(self._tail + data if self._tail else data)
        elif self.protocol.state is State.CONNECTING:
            self._handshake(data)
        else:
            self._slow(data)

    def _handshake(self, data: bytes) -> None:
        """Give `websockets` the HTTP response only, so its parser ends at a frame boundary."""
        seen = self._tail + data
        end = seen.find(b"\r\n\r\n")
        if end < 0:
            self._tail = seen[-3:]  # the blank line may be split across reads
            super().data_received(data)
            return
        cut = end + 4 - len(self._tail)
        self._tail = b""
        super().data_received(data[:cut])
        if self.protocol.state is not State.OPEN:
            self._slow(data[cut:])  # refused: `websockets` reports it
        elif data[cut:]:
            self.data_received(data[cut:])

    def _slow(self, data: bytes) -> None:
        """Hand this connection back to `websockets` for good."""
        self._fast = False
        self._tail = b""
        if data:
            super().data_received(data)

    def _split(self, buf: bytes) -> None:  # noqa: C901 - the per-frame loop, kept in one piece
        sink = self._on_frame
        assert sink is not None
        cap = self.protocol.max_message_size
        if cap is None:
            cap = 1 << 63
        frames: list[bytes] = []
        append = frames.append
        pos, end = 0, len(buf)
        while end - pos >= 2:
            first, size = buf[pos], buf[pos + 1]
            if first == 0x81 and size == 126 and end - pos >= 4:  # the common case, inline
                n = buf[pos + 2] << 8 | buf[pos + 3]
                if n <= cap:
                    stop = pos + 4 + n
                    if stop > end:
                        break
                    append(buf[pos + 4 : stop])
                    pos = stop
                    continue
            if size & 0x80 or first not in _KNOWN_FRAMES:
                if frames:
                    sink(self, frames)
                self._slow(buf[pos:])  # masked, fragmented, extension bits: not ours
                return
            head = 2 if size < 126 else 4 if size == 126 else 10
            if end - pos < head:
                break
            if head > 2:
                size = int.from_bytes(buf[pos + 2 : pos + head], "big")
            if size > cap or (size > 125 and first in _CONTROL_FRAMES):
                if frames:
                    sink(self, frames)
                self._slow(buf[pos:])  # `websockets` fails the connection (1009 or 1002)
                return
            stop = pos + head + size
            if stop > end:
                break
            if first in _DATA_FRAMES:
                append(buf[pos + head : stop])
            else:
                if frames:  # the data frames before it first, so the order holds
                    sink(self, frames)
                    frames = []
                    append = frames.append
                super().data_received(buf[pos:stop])
                if self.protocol.state is not State.OPEN:
                    self._slow(buf[stop:])
                    return
            pos = stop
        self._tail = buf[pos:]
        if frames:
            sink(self, frames)


async def open_socket(
    url: str, options: AdapterOptions, *, on_frame: FrameSink | None = None, **kw: Any
) -> ObservedConnection:
    """Connect (TransientError on failure); `max_size` is the hard cap, not the drop threshold.

    With `on_frame`, data frames take the fast path from the first one on (see module docstring)
    and iterating the connection yields only what `websockets` was handed back."""

    def create(*args: Any, **kwargs: Any) -> ObservedConnection:
        return ObservedConnection(*args, on_frame=on_frame, **kwargs)

    context = client_context(options.ca_file) if url.startswith("wss:") else None
    if context is not None:
        kw.setdefault("ssl", context)
    try:
        conn = await connect(
            url,
            create_connection=create,  # type: ignore[arg-type]
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
        # Unbounded as a structure; `queue_size` is enforced by pausing the readers (see `_take`).
        self._queue: asyncio.Queue[FeedEvent | _End] = asyncio.Queue()
        self._limit = max(1, options.queue_size)
        self._room = asyncio.Event()
        self._room.set()
        self._paused: set[ObservedConnection] = set()
        self._throttled = False
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
        low = self._limit // 2
        while True:
            item = await queue.get()
            if self._throttled and queue.qsize() <= low:
                self._release()
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
        # Called synchronously from the protocol: never blocks (the queue is bounded by pausing).
        self._queue.put_nowait(Heartbeat())

    def frame_sink(self, handle: FrameHandler) -> FrameSink:
        """An `on_frame` for `open_socket`: the fast path's counterpart of `_read`, called once
        per TCP read with its frames (the queue bound is checked once per read too)."""

        stats, queue, limit = self.stats, self._queue, self._limit
        put, max_frame = queue.put_nowait, self.options.max_frame_bytes

        def take(conn: ObservedConnection, messages: list[bytes]) -> None:
            stats.frames += len(messages)
            for message in messages:
                if len(message) > max_frame:
                    stats.frames -= 1  # `_take` counts it
                    self._take(conn, message, handle)
                    continue
                events = handle(conn, message)  # `_take`, inline
                if events:
                    for event in events:
                        put(event)
            if queue.qsize() >= limit and conn not in self._paused:
                conn.transport.pause_reading()
                self._paused.add(conn)
                self._throttled = True

        return take

    def _take(self, conn: ObservedConnection, message: str | bytes, handle: FrameHandler) -> None:
        """Count one frame, drop it if oversized, else queue the events it yields."""
        stats = self.stats
        stats.frames += 1
        if len(message) > self.options.max_frame_bytes:
            stats.oversized += 1
            limit = self.options.max_frame_bytes
            self._queue.put_nowait(self.dropped(f"oversized: {len(message)} bytes > {limit}"))
            return
        events = handle(conn, message)
        if events:
            put = self._queue.put_nowait
            for event in events:
                put(event)

    async def _read(self, conn: ObservedConnection, handle: FrameHandler) -> None:
        """Pump one socket until it closes; oversized frames are dropped before parsing."""
        async for message in conn:
            while self._queue.qsize() >= self._limit and not self._closed:
                self._room.clear()
                self._throttled = True
                await self._room.wait()
            self._take(conn, message, handle)

    def _release(self) -> None:
        """The consumer caught up: let waiting readers and paused sockets go on."""
        self._throttled = False
        self._room.set()
        for conn in self._paused:
            conn.transport.resume_reading()
        self._paused.clear()

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
