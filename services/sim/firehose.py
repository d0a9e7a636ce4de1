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
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from operator import itemgetter
from typing import Any

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
        # [minute offset][phase] -> that phase's frame of every symbol (by symbol index), so a
        # connection picks its streams' frames with one C-level itemgetter per phase
        self._frames: list[tuple[list[bytes], ...]] = []
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
        symbols = len(self.market.symbols)
        self._frames = [
            tuple([b""] * symbols for _ in range(SLICES)) for _ in range(count if symbols else 0)
        ]
        for result in results:
            for index, minutes in result.items():
                for offset, frames in enumerate(minutes):
                    phases = self._frames[offset]
                    for k in range(SLICES):
                        phases[k][index] = frames[k]

    def _phases(
        self, offset: int, wanted: list[int], pick: Callable[[Sequence[bytes]], Any]
    ) -> list[bytes]:
        """The batches to write for one minute: all wanted streams, phase by phase."""
        if offset >= len(self._frames):
            # Past the prepared window: render this minute here (much slower).
            minute = self.first_minute + offset
            per = [render_symbol(self.market, i, minute, 1)[0] for i in wanted]
            return [b"".join([frames[k] for frames in per]) for k in range(SLICES)]
        if len(wanted) == 1:
            return [phase[wanted[0]] for phase in self._frames[offset]]
        return [b"".join(pick(phase)) for phase in self._frames[offset]]

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
        streams: list[str] = []
        wanted: list[int] = []
        pick: Callable[[Sequence[bytes]], Any] = itemgetter(0)
        record: list[Callable[[int], None]] = []
        while not conn.closed and not transport.is_closing():
            if list(conn.streams) != streams:  # (re)subscribed: what to pick and record
                streams = list(conn.streams)
                wanted = [self._names[n] for n in streams if n in self._names]
                pick = itemgetter(*wanted) if wanted else itemgetter(0)
                names = [self.market.symbols[i].name for i in wanted]
                record = [self.truth.recorder("binance", name, "1m") for name in names]
            if not wanted:
                await self._flush_replies(conn, transport)
                await asyncio.sleep(0.05)
                continue
            for batch in self._phases(offset, wanted, pick):
                await self._flush_replies(conn, transport)
                transport.write(batch)
                # A raw transport has no public drain(); poll its buffer instead.
                while transport.get_write_buffer_size() > _HIGH_WATER:  # noqa: ASYNC110
                    await asyncio.sleep(_POLL_S)
            minute_start = (self.first_minute + offset) * MINUTE_MS
            self.clock.advance_to(minute_start + MINUTE_MS + 1)
            for add in record:
                add(minute_start)
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
