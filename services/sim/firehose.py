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
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

from aiohttp import WSMsgType, web

from services.sim.binance_frames import combined, kline_event
from services.sim.binance_ws import Connection, handle_command
from services.sim.clock import SimClock
from services.sim.config import SimConfig
from services.sim.faults import Faults
from services.sim.market import MINUTE_MS, SLICE_MS, SLICES, Market, flat, merge
from services.sim.truth import Truth

_HIGH_WATER = 4 << 20
# A full buffer (4 MiB, ~9,000 frames) lasts tens of ms at the fastest reader, so polling it
# every 5 ms never lets the socket run dry and wakes the simulator a fifth as often as 1 ms
# polls would (it shares the machine with the reader it serves).
_POLL_S = 0.005


def ws_frame(payload: bytes) -> bytes:
    """An unmasked, final text frame (server to client)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


def render_symbol(
    market: Market, index: int, first_minute: int, count: int
) -> list[tuple[bytes, ...]]:
    """Per minute, the four frames (three partials, then the final) of one symbol's 1m stream."""
    spec = market.symbols[index]
    stream = f"{spec.name.lower()}@kline_1m"
    prev = market.last_price_before(spec, first_minute)
    out = []
    for minute in range(first_minute, first_minute + count):
        start = minute * MINUTE_MS
        data = market.minute(spec, minute)
        frames = []
        for k in range(1, SLICES + 1):
            done = merge(sl.bar for sl in data.slices[:k] if sl is not None) or flat(prev)
            final = k == SLICES
            event_time = start + k * SLICE_MS + (1 if final else 0)
            text = kline_event(spec, "1m", MINUTE_MS, start, done, final, event_time)
            frames.append(ws_frame(combined(stream, text).encode()))
            if final:
                prev = done.close
        out.append(tuple(frames))
    return out


def _render_chunk(
    config: SimConfig, indices: list[int], first_minute: int, count: int
) -> dict[int, list[tuple[bytes, ...]]]:
    market = Market("binance", config)  # pure: a worker process rebuilds the same market
    return {i: render_symbol(market, i, first_minute, count) for i in indices}


class Firehose:
    def __init__(
        self, market: Market, clock: SimClock, truth: Truth, faults: Faults, config: SimConfig
    ) -> None:
        self.market, self.clock, self.truth, self.faults = market, clock, truth, faults
        self.config = config
        self.first_minute = clock.start_ms // MINUTE_MS
        self._names = {f"{s.name.lower()}@kline_1m": s.index for s in market.symbols}
        # [symbol index][minute offset] -> four frames
        self._frames: list[list[tuple[bytes, ...]]] = [[] for _ in market.symbols]
        self.connections: set[Connection] = set()

    def prepare(self) -> None:
        """Render `firehose_minutes` minutes for every symbol, on every core."""
        count = self.config.firehose_minutes
        indices = [s.index for s in self.market.symbols]
        workers = max(1, min(os.cpu_count() or 1, len(indices)))
        chunks = [indices[w::workers] for w in range(workers)]
        if workers == 1 or count * len(indices) < 2000:
            results = [_render_chunk(self.config, indices, self.first_minute, count)]
        else:
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = [
                    pool.submit(_render_chunk, self.config, c, self.first_minute, count)
                    for c in chunks
                ]
                results = [f.result() for f in futures]
        for result in results:
            for index, frames in result.items():
                self._frames[index] = frames

    def _phases(self, offset: int, wanted: list[int]) -> list[bytes]:
        """The batches to write for one minute: all wanted streams, phase by phase."""
        if offset >= len(self._frames[wanted[0]]):
            # Past the prepared window: render this minute here (much slower).
            minute = self.first_minute + offset
            per = [render_symbol(self.market, i, minute, 1)[0] for i in wanted]
        else:
            per = [self._frames[i][offset] for i in wanted]
        return [b"".join([frames[k] for frames in per]) for k in range(SLICES)]

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
            for batch in self._phases(offset, wanted):
                await self._flush_replies(conn, transport)
                transport.write(batch)
                # A raw transport has no public drain(); poll its buffer instead.
                while transport.get_write_buffer_size() > _HIGH_WATER:  # noqa: ASYNC110
                    await asyncio.sleep(_POLL_S)
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
