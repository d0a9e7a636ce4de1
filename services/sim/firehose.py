"""Binance firehose: `1m` kline streams written as fast as the client reads, for benchmarks.

Frames (three partial updates and the final per candle, combined-stream format) are rendered
once, as complete WebSocket frames, for the first `firehose_minutes` minutes from the clock's
start; later minutes are rendered on the fly. A connection writes minute after minute in large
batches straight to its transport (one write per phase instead of one per frame), pushing the
sim clock forward past each minute it finishes, so REST and the truth agree with what was sent.
Only `1m` kline streams are served; live SUBSCRIBE/UNSUBSCRIBE and LIST_SUBSCRIPTIONS work.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import WSMsgType, web

from services.sim.binance_frames import combined, kline_event
from services.sim.binance_ws import Connection, handle_command
from services.sim.clock import SimClock
from services.sim.config import SimConfig
from services.sim.faults import Faults
from services.sim.market import MINUTE_MS, SLICE_MS, SLICES, Market, flat, merge
from services.sim.truth import Truth

_HIGH_WATER = 4 << 20


def ws_frame(payload: bytes) -> bytes:
    """An unmasked, final text frame (server to client)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


class Firehose:
    def __init__(
        self, market: Market, clock: SimClock, truth: Truth, faults: Faults, config: SimConfig
    ) -> None:
        self.market, self.clock, self.truth, self.faults = market, clock, truth, faults
        self.config = config
        self.first_minute = clock.start_ms // MINUTE_MS
        self._names = {f"{s.name.lower()}@kline_1m": s.index for s in market.symbols}
        self._prepared: list[list[list[bytes]]] = []  # [minute offset][phase][symbol index]
        self._last_close: dict[int, int] = {}
        self.connections: set[Connection] = set()

    def prepare(self) -> None:
        for offset in range(self.config.firehose_minutes):
            self._prepared.append(self._render_minute(self.first_minute + offset))

    def _render_minute(self, minute: int) -> list[list[bytes]]:
        """Four phases of frames (3 partials, then the final) for every symbol."""
        start = minute * MINUTE_MS
        phases: list[list[bytes]] = [[] for _ in range(SLICES)]
        for spec in self.market.symbols:
            data = self.market.minute(spec, minute)
            prev = self._last_close.get(spec.index)
            if prev is None:
                prev = self.market.last_price_before(spec, minute)
            stream = f"{spec.name.lower()}@kline_1m"
            for k in range(1, SLICES + 1):
                done = merge(sl.bar for sl in data.slices[:k] if sl is not None) or flat(prev)
                final = k == SLICES
                event_time = start + k * SLICE_MS + (1 if final else 0)
                text = kline_event(spec, "1m", MINUTE_MS, start, done, final, event_time)
                phases[k - 1].append(ws_frame(combined(stream, text).encode()))
                if final:
                    self._last_close[spec.index] = done.close
        return phases

    def _minute_frames(self, offset: int) -> list[list[bytes]]:
        if offset < len(self._prepared):
            return self._prepared[offset]
        return self._render_minute(self.first_minute + offset)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = Connection(ws, request, combined=True)
        raw = request.query.get("streams", "")
        conn.streams.update(dict.fromkeys(s for s in raw.split("/") if s))
        self.connections.add(conn)
        writer = asyncio.create_task(self._write(conn, request))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    reply = handle_command(conn, msg.data, self.config.binance_max_streams)
                    if reply is not None:
                        conn.outbox.put_nowait(reply)
        finally:
            conn.closed = True
            self.connections.discard(conn)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        return ws

    async def _write(self, conn: Connection, request: web.Request) -> None:
        transport = request.transport
        assert transport is not None
        offset = max(0, self.clock.now_ms() // MINUTE_MS - self.first_minute)
        while not conn.closed and not transport.is_closing():
            wanted = [self._names[n] for n in conn.streams if n in self._names]
            if not wanted:
                await self._flush_replies(conn, transport)
                await asyncio.sleep(0.05)
                continue
            phases = self._minute_frames(offset)
            for frames in phases:
                await self._flush_replies(conn, transport)
                transport.write(b"".join([frames[i] for i in wanted]))
                # A raw transport has no public drain(); poll its buffer instead.
                while transport.get_write_buffer_size() > _HIGH_WATER:  # noqa: ASYNC110
                    await asyncio.sleep(0.001)
            minute_start = (self.first_minute + offset) * MINUTE_MS
            self.clock.advance_to(minute_start + MINUTE_MS + 1)
            for i in wanted:
                self.truth.record("binance", self.market.symbols[i].name, "1m", minute_start)
            offset += 1
            await asyncio.sleep(0)

    async def _flush_replies(self, conn: Connection, transport: asyncio.BaseTransport) -> None:
        while not conn.outbox.empty():
            reply = conn.outbox.get_nowait()
            if reply is not None and isinstance(transport, asyncio.WriteTransport):
                transport.write(ws_frame(reply.encode()))

    async def aclose(self) -> None:
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"simulator stopping")
