"""Binance Spot WebSocket streams: `/stream?streams=…` (combined) and `/ws/<stream>` (raw).

Kline streams only. Each minute has three partial updates (every 15 sim seconds) and a final
frame with `x: true` right after the close; longer intervals get a partial every 15 s and their
final at their close. Live SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS/SET_PROPERTY/GET_PROPERTY,
the 5 messages/s limit (exceeding disconnects), 1024 streams per connection, server pings that
must be answered, a connection lifetime, and the faults of `faults.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from livermore_common.logs import get_logger
from services.sim.binance_frames import combined, kline_event, malformed_event
from services.sim.binance_frames import server_shutdown_event as shutdown_event
from services.sim.candles import binance_kline
from services.sim.clock import SimClock
from services.sim.faults import Faults
from services.sim.intervals import BINANCE_INTERVALS
from services.sim.market import SLICE_MS, Market
from services.sim.truth import Truth
from services.sim.universe import SymbolSpec

_OUTBOX_LIMIT = 200_000
_log = get_logger("sim.binance")


def parse_stream(name: str, market: Market) -> tuple[SymbolSpec, str, int] | None:
    """`btcusdt@kline_1m` -> (spec, "1m", 60000); None for anything not simulated."""
    symbol, _, kind = name.partition("@")
    if not kind.startswith("kline_"):
        return None
    interval = kind[len("kline_") :]
    spec = market.by_name.get(symbol.upper())
    step = BINANCE_INTERVALS.get(interval)
    if spec is None or step is None or symbol != symbol.lower():
        return None
    return spec, interval, step


class Connection:
    def __init__(self, ws: web.WebSocketResponse, request: web.Request, combined: bool) -> None:
        self.ws = ws
        self.transport = request.transport
        self.combined = combined
        self.streams: dict[str, None] = {}
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.incoming: deque[float] = deque()
        self.pings: dict[bytes, float] = {}
        self.opened = time.monotonic()
        self.closed = False

    def send(self, text: str) -> None:
        if not self.closed:
            if self.outbox.qsize() > _OUTBOX_LIMIT:
                self.abort()  # a consumer this slow is cut off, as the real server does
                return
            self.outbox.put_nowait(text)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        self.outbox.put_nowait(None)


class BinanceStreams:
    """All Binance WebSocket connections; one pump renders each stream's frame once per phase."""

    def __init__(
        self, market: Market, clock: SimClock, truth: Truth, faults: Faults, config: Any
    ) -> None:
        self.market = market
        self.clock = clock
        self.truth = truth
        self.faults = faults
        self.config = config
        self.connections: set[Connection] = set()
        self._background: set[asyncio.Task[object]] = set()
        faults.register("binance", self)

    # ---- connection lifecycle -----------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        combined_mode = request.path.startswith("/stream")
        names = self._initial_streams(request)
        if len(names) > self.config.binance_max_streams:
            body = {"code": 4, "msg": "Too many subscriptions"}
            return web.json_response(body, status=400)
        ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = Connection(ws, request, combined_mode)
        conn.streams.update(dict.fromkeys(names))
        self.connections.add(conn)
        tasks = [
            asyncio.create_task(self._writer(conn)),
            asyncio.create_task(self._pinger(conn)),
        ]
        try:
            await self._reader(conn)
        finally:
            conn.closed = True
            self.connections.discard(conn)
            conn.outbox.put_nowait(None)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    def _initial_streams(self, request: web.Request) -> list[str]:
        if request.path.startswith("/stream"):
            raw = request.query.get("streams", "")
            return [s for s in raw.split("/") if s]
        tail = request.match_info.get("tail", "")
        return [tail] if tail else []

    async def _writer(self, conn: Connection) -> None:
        while True:
            text = await conn.outbox.get()
            if text is None or conn.ws.closed:
                return
            try:
                await conn.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                conn.abort()
                return

    async def _pinger(self, conn: Connection) -> None:
        interval = self.config.binance_ping_interval_s
        while not conn.closed:
            await asyncio.sleep(interval)
            now = time.monotonic()
            if now - conn.opened > self.config.binance_max_connection_s:
                await conn.ws.close(code=1000, message=b"connection lifetime reached")
                return
            oldest = min(conn.pings.values(), default=now)
            if now - oldest > self.config.binance_pong_timeout_s:
                conn.abort()
                return
            if self.faults.is_stalled("binance"):
                continue
            payload = str(int(time.time() * 1000)).encode()
            conn.pings[payload] = now
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.ping(payload)

    async def _reader(self, conn: Connection) -> None:
        async for msg in conn.ws:
            if not self._within_rate(conn):
                conn.abort()
                return
            if msg.type == WSMsgType.PING:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await conn.ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                # Only a pong echoing one of our pings counts (unsolicited ones do not).
                sent = conn.pings.pop(bytes(msg.data), None)
                if sent is not None:
                    conn.pings = {p: t for p, t in conn.pings.items() if t > sent}
            elif msg.type == WSMsgType.TEXT:
                reply = handle_command(conn, msg.data, self.config.binance_max_streams)
                if reply is not None:
                    conn.send(reply)
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                return

    def _within_rate(self, conn: Connection) -> bool:
        now = time.monotonic()
        conn.incoming.append(now)
        while conn.incoming and now - conn.incoming[0] > 1.0:
            conn.incoming.popleft()
        limit: int = self.config.binance_max_incoming_per_s
        return len(conn.incoming) <= limit

    # ---- the pump -----------------------------------------------------------------------

    async def run(self) -> None:
        """Emit partial and final klines at every 15-second phase of the sim clock."""
        next_phase = (self.clock.now_ms() // SLICE_MS + 1) * SLICE_MS
        while True:
            # Finals go out just after the close (E >= T + 1), as on the real feed.
            await self.clock.sleep_until(next_phase + 1)
            await asyncio.sleep(0)
            now = self.clock.now_ms()
            last = now - (now - 1) % SLICE_MS - 1  # latest phase boundary < now
            for phase in range(next_phase, last + 1, SLICE_MS):
                try:
                    await self.emit_phase(phase, now, latest=phase == last)
                except Exception:  # one bad phase must not silence every stream for good
                    _log.exception("kline phase failed", phase=phase)
            next_phase = last + SLICE_MS

    async def emit_phase(self, phase: int, now: int, *, latest: bool) -> None:
        """Finals for intervals closing at `phase`; partials (latest phase only) for the rest."""
        if self.faults.is_stalled("binance") or not self.connections:
            return
        rendered: dict[str, str | None] = {}
        for conn in list(self.connections):
            for name in list(conn.streams):
                if name not in rendered:
                    rendered[name] = self._render(name, phase, now, latest)
                    if len(rendered) % 64 == 0:
                        await asyncio.sleep(0)  # a first daily kline can take a while
                data = rendered[name]
                if data is not None:
                    conn.send(combined(name, data) if conn.combined else data)

    def _render(self, name: str, phase: int, now: int, latest: bool) -> str | None:
        parsed = parse_stream(name, self.market)
        if parsed is None:
            return None
        spec, interval, step = parsed
        if phase % step == 0:
            start = phase - step
            bar = binance_kline(self.market, spec, step, start, phase)
            self.truth.record("binance", spec.name, interval, start)
            return kline_event(spec, interval, step, start, bar, True, now)
        if not latest:
            return None
        start = phase - phase % step
        bar = binance_kline(self.market, spec, step, start, phase)
        return kline_event(spec, interval, step, start, bar, False, now)

    # ---- faults -------------------------------------------------------------------------

    def drop(self) -> int:
        conns = list(self.connections)
        for conn in conns:
            conn.abort()
        return len(conns)

    def inject(self, kind: str, count: int) -> int:
        now = self.clock.now_ms()
        hit = 0
        for conn in list(self.connections):
            parsed = next((p for n in conn.streams if (p := parse_stream(n, self.market))), None)
            if parsed is None:
                continue
            spec, interval, _ = parsed
            name = f"{spec.name.lower()}@kline_{interval}"
            start = now - now % 60_000
            for _ in range(count):
                data = malformed_event(kind, spec, interval, start, now)
                conn.send(combined(name, data) if conn.combined else data)
            hit += 1
        return hit

    def sequence_skip(self, count: int) -> int:
        raise ValueError("sequence numbers are a Coinbase feature")

    def server_shutdown(self, after_s: float) -> int:
        conns = list(self.connections)
        event = shutdown_event(self.clock.now_ms())
        for conn in conns:
            conn.send(combined("!serverShutdown", event) if conn.combined else event)
        loop = asyncio.get_running_loop()
        for conn in conns:
            loop.call_later(after_s, self._close_soft, conn)
        return len(conns)

    def _close_soft(self, conn: Connection) -> None:
        if not conn.closed:
            task = asyncio.create_task(conn.ws.close(code=1001, message=b"server shutdown"))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def aclose(self) -> None:
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"simulator stopping")


_decoder = msgspec.json.Decoder()


def handle_command(conn: Connection, text: str, max_streams: int) -> str | None:
    """The reply to one live command (SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, properties)."""
    try:
        req = _decoder.decode(text)
    except msgspec.DecodeError:
        return _error(3, "Invalid JSON: expected value at line 1 column 1", None)
    if not isinstance(req, dict):
        return _error(2, "Invalid request: request must be an object", None)
    req_id, method, params = req.get("id"), req.get("method"), req.get("params", [])
    if not isinstance(req_id, int | str) or isinstance(req_id, bool):
        return _error(2, "Invalid request: request ID must be an unsigned integer", None)
    if not isinstance(params, list):
        return _error(2, "Invalid request: params must be an array", req_id)
    return _method(conn, method, params, req_id, max_streams)


def _method(conn: Connection, method: Any, params: list[Any], req_id: Any, max_streams: int) -> str:
    if method == "SUBSCRIBE":
        names = [p for p in params if isinstance(p, str)]
        added = [n for n in names if n not in conn.streams]
        if len(conn.streams) + len(added) > max_streams:
            return _error(4, "Too many subscriptions", req_id)
        conn.streams.update(dict.fromkeys(added))
        return _result(None, req_id)
    if method == "UNSUBSCRIBE":
        for name in params:
            conn.streams.pop(name, None)
        return _result(None, req_id)
    if method == "LIST_SUBSCRIPTIONS":
        return _result(list(conn.streams), req_id)
    if method == "SET_PROPERTY" and len(params) == 2 and params[0] == "combined":
        if not isinstance(params[1], bool):
            return _error(1, "Invalid value type: expected Boolean", req_id)
        conn.combined = params[1]
        return _result(None, req_id)
    if method == "GET_PROPERTY" and params == ["combined"]:
        return _result(conn.combined, req_id)
    return _error(2, "Invalid request: unknown method or property", req_id)


def _result(result: Any, req_id: Any) -> str:
    return msgspec.json.encode({"result": result, "id": req_id}).decode()


def _error(code: int, msg: str, req_id: Any) -> str:
    return msgspec.json.encode({"error": {"code": code, "msg": msg}, "id": req_id}).decode()
