"""Binance Spot live feed: native kline streams over combined-stream sockets.

Streams are spread over sockets of at most `max_streams` (1024); each socket is opened at
`{ws_url}/stream?streams=a/b/c` with its first streams in the URL and the rest added by
SUBSCRIBE. Control messages (SUBSCRIBE/UNSUBSCRIBE) are paced below the venue's 5 incoming
messages per second per socket and wait for their `{"result": null, "id": n}` answer. Every socket
is replaced before Binance's 24 h limit, and at once on `serverShutdown`, make-before-break: the
new socket is opened and streaming before the old one is closed; the kline tracker ignores the
duplicates of the overlap. Protocol pings are answered by `websockets` (see ws.py) and surface as
`Heartbeat` events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from math import isfinite
from typing import Any

import msgspec
from websockets.exceptions import ConnectionClosed

from livermore_common.errors import LivermoreError, ProtocolError, TransientError
from livermore_common.exchanges.backoff import Backoff
from livermore_common.exchanges.base import (
    AdapterOptions,
    ClosedCandle,
    FeedEvent,
    FeedGap,
    Heartbeat,
)
from livermore_common.exchanges.binance import parse
from livermore_common.exchanges.binance import schemas as s
from livermore_common.exchanges.binance.klines import KlineTracker
from livermore_common.exchanges.ratelimit import RateLimiter
from livermore_common.exchanges.validation import InvalidFrame
from livermore_common.exchanges.ws import FeedBase, FrameHandler, ObservedConnection, open_socket
from livermore_common.messages import Candle

CLOCK_TICK_MS = 1_000  # venue time between two clock heartbeats taken from kline event times
URL_STREAMS = 200  # streams named in the connect URL; the rest are SUBSCRIBEd
PARAMS_PER_REQUEST = 200
REPLY_TIMEOUT_S = 10.0
ROTATE_ATTEMPTS = 5
FIRST_FRAME_WAIT_S = 5.0
_encoder = msgspec.json.Encoder()


@dataclass(eq=False)
class _Conn:
    ws: ObservedConnection
    streams: set[str]
    limiter: RateLimiter
    first_frame: asyncio.Event = field(default_factory=asyncio.Event)
    seen: bool = False  # first_frame is set (a plain flag for the per-frame check)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    retiring: bool = False
    closing: bool = False  # we close it on purpose
    lost: bool = False  # it closed by itself while being replaced
    stalled: bool = False


class BinanceFeed(FeedBase):
    stall_timeout_default = 60.0  # Binance pings every 20 s; klines push every 1-2 s

    def __init__(
        self,
        *,
        ws_url: str,
        symbols: Sequence[str],
        timeframes: Sequence[str],
        options: AdapterOptions,
        max_streams: int,
        messages_per_second: float,
        connect_limiter: RateLimiter,
        venue: str = "binance",
        opened_at: int | None = None,
    ) -> None:
        """`opened_at`: venue time at opening, up to which the caller backfills; a stream whose
        first frame is for a later bucket reports the closes it missed as a FeedGap."""
        super().__init__(venue=venue, options=options)
        self._base = ws_url.rstrip("/")
        self._timeframes = tuple(dict.fromkeys(timeframes))
        self._max_streams = max(1, max_streams)
        self._msg_rate = max(1.0, messages_per_second - 1)
        self._connect_limiter = connect_limiter
        self._pairs: dict[str, tuple[str, str]] = self._pairs_for(symbols)
        self._wanted = set(self._pairs.values())
        self._conns: list[_Conn] = []
        self._tracker = KlineTracker()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self._topology = asyncio.Lock()
        self._clock = 0  # venue time of the last clock heartbeat
        if opened_at is not None:
            for pair in self._pairs.values():
                self._tracker.expect(*pair, opened_at)

    def _pairs_for(self, symbols: Sequence[str]) -> dict[str, tuple[str, str]]:
        return {
            parse.stream_name(sym, tf): (sym.upper(), tf)
            for sym in dict.fromkeys(symbols)
            for tf in self._timeframes
        }

    @property
    def streams(self) -> list[list[str]]:
        """The streams of each open socket (for status and tests)."""
        return [sorted(c.streams) for c in self._conns]

    async def start(self) -> None:
        names = sorted(self._pairs)
        for i in range(0, len(names), self._max_streams):
            self._conns.append(await self._open(names[i : i + self._max_streams]))

    # ---- sockets ----------------------------------------------------------------------------

    async def _open(self, streams: Sequence[str]) -> _Conn:
        await self._connect_limiter.acquire()
        url = f"{self._base}/stream?streams=" + "/".join(streams[:URL_STREAMS])
        # Frames take the fast path from the handshake on, before `conn` exists; `opened`
        # holds it once it does (frames with no conn yet are parsed all the same).
        opened: list[_Conn | None] = [None]
        sink = self.frame_sink(self._fast_handler(opened))
        ws = await open_socket(url, self.options, on_frame=sink)
        ws.on_ping = self._on_ping
        conn = _Conn(ws, set(streams[:URL_STREAMS]), RateLimiter(rate=self._msg_rate, capacity=1))
        opened[0] = conn
        stall = self.options.stall_timeout_s or self.stall_timeout_default
        conn.tasks = [
            self._spawn(self._pump(conn), "reader"),
            self._spawn(self._watch(ws, stall, lambda: setattr(conn, "stalled", True)), "watchdog"),
            self._spawn(self._rotate_later(conn), "rotation-timer"),
        ]
        rest = list(streams[URL_STREAMS:])
        try:
            await self._subscribe(conn, "SUBSCRIBE", rest)
        except BaseException:
            await self._shut(conn)
            raise
        return conn

    async def _pump(self, conn: _Conn) -> None:
        why = await self._pump_socket(conn.ws, lambda _ws, data: self.handle_frame(data, conn))
        if self._closed or conn.closing:
            return
        if conn.retiring:
            conn.lost = True  # the rotation will report the hole
            return
        why = "stalled" if conn.stalled else why
        await self._fail(TransientError(f"{self.venue} WebSocket {why}"))

    async def _shut(self, conn: _Conn) -> None:
        conn.closing = True
        for task in conn.tasks[1:]:  # not the reader: it may hold events still to deliver
            if task is not asyncio.current_task():
                task.cancel()
        await conn.ws.close()

    async def _close_sockets(self) -> None:
        for future in self._pending.values():
            future.cancel()
        for conn in self._conns:
            conn.closing = True
            await conn.ws.close()

    async def _request(self, conn: _Conn, method: str, params: list[Any]) -> Any:
        self._next_id += 1
        request_id = self._next_id
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await conn.limiter.acquire()
            message = _encoder.encode(s.WsRequest(method=method, params=params, id=request_id))
            await conn.ws.send(message.decode())
            return await asyncio.wait_for(future, REPLY_TIMEOUT_S)
        except ConnectionClosed:
            raise TransientError(f"{self.venue} WebSocket closed during {method}") from None
        except TimeoutError:
            raise TransientError(f"{self.venue} did not answer {method}") from None
        finally:
            self._pending.pop(request_id, None)

    async def _subscribe(self, conn: _Conn, method: str, streams: Sequence[str]) -> None:
        for i in range(0, len(streams), PARAMS_PER_REQUEST):
            chunk = list(streams[i : i + PARAMS_PER_REQUEST])
            await self._request(conn, method, chunk)
            if method == "SUBSCRIBE":
                conn.streams.update(chunk)
            else:
                conn.streams.difference_update(chunk)

    # ---- live changes -----------------------------------------------------------------------

    async def update_symbols(self, symbols: Sequence[str]) -> None:
        async with self._topology:
            new_pairs = self._pairs_for(symbols)
            removed = [n for n in self._pairs if n not in new_pairs]
            added = sorted(n for n in new_pairs if n not in self._pairs)
            # Accept the new streams' frames from the moment they are requested.
            self._wanted |= set(new_pairs.values())
            if self._clock:
                for name in added:
                    self._tracker.expect(*new_pairs[name], self._clock)
            await self._remove_streams(set(removed))
            await self._add_streams(added)
            for name in removed:
                self._tracker.forget(*self._pairs[name])
            self._pairs = new_pairs
            self._wanted = set(new_pairs.values())

    async def _remove_streams(self, removed: set[str]) -> None:
        for conn in list(self._conns):
            gone = sorted(conn.streams & removed)
            if gone and len(gone) == len(conn.streams):
                self._conns.remove(conn)  # nothing left on it: close instead of unsubscribing
                await self._shut(conn)
            elif gone:
                await self._subscribe(conn, "UNSUBSCRIBE", gone)

    async def _add_streams(self, added: list[str]) -> None:
        for conn in self._conns:
            room = self._max_streams - len(conn.streams)
            if room > 0 and added:
                await self._subscribe(conn, "SUBSCRIBE", added[:room])
                added = added[room:]
        while added:
            self._conns.append(await self._open(added[: self._max_streams]))
            added = added[self._max_streams :]

    # ---- rotation -----------------------------------------------------------------------------

    async def _rotate_later(self, conn: _Conn) -> None:
        await asyncio.sleep(self.options.rotate_after_s)
        self._spawn(self.rotate(conn), "rotation")

    async def rotate(self, conn: _Conn) -> None:
        """Replace `conn` by a new socket with the same streams (make-before-break)."""
        async with self._topology:
            if conn not in self._conns or conn.retiring or self._closed:
                return
            conn.retiring = True
            new = await self._open_with_retries(sorted(conn.streams))
            if new is None:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(new.first_frame.wait(), FIRST_FRAME_WAIT_S)
            self._conns[self._conns.index(conn)] = new
            self.stats.rotations += 1
            await self._shut(conn)
            if conn.lost:
                symbols = tuple(
                    sorted({self._pairs[n][0] for n in conn.streams if n in self._pairs})
                )
                self.stats.gaps += 1
                await self._emit(
                    FeedGap(reason="socket lost before its replacement", symbols=symbols)
                )

    async def _open_with_retries(self, streams: list[str]) -> _Conn | None:
        backoff = Backoff(base=0.5, cap=10.0)
        error: LivermoreError | None = None
        for _ in range(ROTATE_ATTEMPTS):
            try:
                return await self._open(streams)
            except TransientError as exc:
                error = exc
                await backoff.wait()
        await self._fail(TransientError(f"{self.venue} socket replacement failed: {error}"))
        return None

    # ---- frames -------------------------------------------------------------------------------

    def _fast_handler(self, opened: list[_Conn | None]) -> FrameHandler:
        """`handle_frame` for the fast path, with its kline case inline (one call per frame)."""
        decode, on_kline, slow = parse.decode_kline, self._on_kline, self.handle_frame

        def handle(_ws: ObservedConnection, data: str | bytes) -> list[FeedEvent] | None:
            conn = opened[0]
            if conn is None or not conn.seen:
                return slow(data, conn)
            try:
                kline = decode(data).data
            except msgspec.DecodeError:
                return slow(data, conn)  # an envelope, or the precise reason to drop it
            try:
                return on_kline(kline)
            except InvalidFrame as exc:
                return [self.dropped(str(exc))]

        return handle

    def handle_frame(self, data: str | bytes, conn: _Conn | None = None) -> list[FeedEvent] | None:
        """Turn one frame into events (public for tests and benchmarks; no I/O)."""
        if conn is not None and not conn.seen:
            conn.seen = True
            conn.first_frame.set()
        try:
            try:  # the kline fast path, inline (this runs 100,000+ times a second)
                return self._on_kline(parse.decode_kline(data).data)
            except msgspec.DecodeError:
                frame = parse.decode_frame(data)  # an envelope, or the precise reason to drop
            if type(frame) is s.LiveCombinedKline:
                return self._on_kline(frame.data)
            assert isinstance(frame, s.Envelope)
            return self._on_envelope(conn, frame)
        except InvalidFrame as exc:
            return [self.dropped(str(exc))]

    def _on_kline(self, event: s.LiveKlineEvent) -> list[FeedEvent] | None:
        k = event.k
        key = (k.s, k.i)
        if key not in self._wanted:
            return None  # a stream being unsubscribed, or one we never asked for
        # `parse.live_candle`, inline: the common case in one test, anything else through the
        # full check (its precise reason, or the candle it still accepts).
        t, o, h, lo, c, v = k.t, k.o, k.h, k.l, k.c, k.v
        if (
            0 <= lo <= h
            and o >= 0
            and c >= 0
            and v >= 0
            and 0 <= t <= k.T
            and isfinite(o + h + c + v)
        ):
            candle = Candle(timestamp=t, open=o, high=h, low=lo, close=c, volume=v)
        else:
            candle = parse.kline_candle(k)
        events = self._tracker.update(key, candle, k.T, k.x, event.E)
        if events is not None:
            for ev in events:
                if type(ev) is ClosedCandle:
                    self.stats.closed_candles += 1
                else:
                    self.stats.gaps += 1
        if self._clock + CLOCK_TICK_MS <= event.E:
            # Binance has no heartbeat channel: kline event times are its clock. At most one
            # per venue second, so the consumer sees the clock move without a flood.
            self._clock = event.E
            self.stats.heartbeats += 1
            if events is None:
                events = []
            events.append(Heartbeat(exchange_time=event.E))
        return events

    def _on_envelope(self, conn: _Conn | None, env: s.Envelope) -> list[FeedEvent] | None:
        if env.id is not None and env.stream is None:
            return self._on_reply(env)
        event = parse.event_of(env)
        if event is not None and event.e == "serverShutdown":
            self.log.info("serverShutdown received; replacing the socket")
            if conn is not None:
                self._spawn(self.rotate(conn), "rotation")
            return None
        kind = event.e if event is not None else "no event"
        return [self.dropped(f"unexpected message: {kind}")]

    def _on_reply(self, env: s.Envelope) -> list[FeedEvent] | None:
        future = self._pending.get(env.id) if isinstance(env.id, int) else None
        if future is None or future.done():
            return [self.dropped(f"unexpected reply id {env.id!r}")]
        if env.error is not None:
            future.set_exception(
                ProtocolError(f"{self.venue}: {env.error.msg} (code {env.error.code})")
            )
        else:
            future.set_result(env.result)
        return None
