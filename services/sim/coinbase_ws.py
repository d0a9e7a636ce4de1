"""Coinbase Advanced Trade market-data WebSocket at the base URL (`/`), channels `heartbeats`,
`candles` (five-minute buckets re-sent every tick while forming) and `market_trades`.

Every message carries `sequence_num`, counted per connection from 0. A client must subscribe
within `coinbase_subscribe_timeout_s` or is disconnected. One pump per connection runs every
`coinbase_tick_ms` sim ms (coalescing when the clock is fast): heartbeat, new trades, candles.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import msgspec
from aiohttp import WSMsgType, web

from livermore_common.logs import get_logger
from services.sim.candles import traded_bar
from services.sim.clock import SimClock
from services.sim.coinbase_frames import Frames, candle_dict, trade_dict
from services.sim.config import SimConfig
from services.sim.faults import Faults
from services.sim.jwt import JwtError, verify_jwt
from services.sim.market import MINUTE_MS, Market
from services.sim.truth import Truth
from services.sim.universe import SymbolSpec

CHANNELS = ("heartbeats", "candles", "market_trades")
BUCKET_MS = 5 * MINUTE_MS
SNAPSHOT_TRADES = 50
_log = get_logger("sim.coinbase")


class CoinbaseConnection:
    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.transport = request.transport
        self.frames = Frames()
        # channel -> product -> sim ms subscribed at
        self.subs: dict[str, dict[str, int]] = {}
        self.subscribed = asyncio.Event()
        self.closed = False
        self.started = time.monotonic()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class CoinbaseFeed:
    def __init__(
        self, market: Market, clock: SimClock, truth: Truth, faults: Faults, config: SimConfig
    ) -> None:
        self.market, self.clock, self.truth, self.faults = market, clock, truth, faults
        self.config = config
        self.connections: set[CoinbaseConnection] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._decoder = msgspec.json.Decoder()
        faults.register("coinbase", self)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = CoinbaseConnection(ws, request)
        self.connections.add(conn)
        pump = asyncio.create_task(self._pump(conn))
        try:
            await self._reader(conn)
        finally:
            conn.closed = True
            self.connections.discard(conn)
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    async def _send(self, conn: CoinbaseConnection, text: str) -> None:
        if conn.closed or conn.ws.closed:
            return
        try:
            await conn.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            conn.abort()

    async def _send_all(self, conn: CoinbaseConnection, texts: list[str]) -> None:
        for text in texts:
            await self._send(conn, text)

    async def _reader(self, conn: CoinbaseConnection) -> None:
        async for msg in conn.ws:
            if msg.type != WSMsgType.TEXT:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    return
                continue
            for reply in self._command(conn, msg.data):
                await self._send(conn, reply)

    # ---- subscribe / unsubscribe --------------------------------------------------------

    def _command(self, conn: CoinbaseConnection, text: str) -> list[str]:
        try:
            req = self._decoder.decode(text)
        except msgspec.DecodeError:
            return [_error("malformed message")]
        if not isinstance(req, dict) or req.get("type") not in ("subscribe", "unsubscribe"):
            return [_error("unknown message type")]
        channel = req.get("channel")
        if channel not in CHANNELS:
            return [_error(f"channel {channel!r} is not supported")]
        jwt = req.get("jwt")
        if isinstance(jwt, str) and self.config.coinbase_jwt_public_key:
            try:
                verify_jwt(jwt, self.config.coinbase_jwt_public_key)
            except JwtError:
                return [_error("authentication failure")]
        products = req.get("product_ids") or []
        if not isinstance(products, list) or any(p not in self.market.by_name for p in products):
            return [_error("Failure to subscribe")]
        if channel != "heartbeats" and not products:
            return [_error("product_ids are required for this channel")]
        if req["type"] == "unsubscribe":
            return self._unsubscribe(conn, channel, products)
        return self._subscribe(conn, channel, products)

    def _subscribe(self, conn: CoinbaseConnection, channel: str, products: list[str]) -> list[str]:
        now = self.clock.now_ms()
        subs = conn.subs.setdefault(channel, {})
        new = [p for p in products if p not in subs]
        for p in new:
            subs[p] = now
        if channel == "heartbeats":
            subs.setdefault("", now)
        conn.subscribed.set()
        replies = [self._ack(conn)]
        if channel == "candles" and new:
            replies.append(self._candles_snapshot(conn, new, now))
        elif channel == "market_trades" and new:
            replies.append(self._trades_snapshot(conn, new, now))
        return replies

    def _unsubscribe(
        self, conn: CoinbaseConnection, channel: str, products: list[str]
    ) -> list[str]:
        subs = conn.subs.get(channel, {})
        for p in products or list(subs):
            subs.pop(p, None)
        if not subs:
            conn.subs.pop(channel, None)
        return [self._ack(conn)]

    def _ack(self, conn: CoinbaseConnection) -> str:
        listing = {ch: [p for p in subs if p] for ch, subs in conn.subs.items()}
        return conn.frames.message(
            "subscriptions", self.clock.now_s(), [{"subscriptions": listing}]
        )

    def _candles_snapshot(self, conn: CoinbaseConnection, products: list[str], now: int) -> str:
        start = now - now % BUCKET_MS
        candles = []
        for name in products:
            spec = self.market.by_name[name]
            bar = traded_bar(self.market, spec, BUCKET_MS, start, now, by_trade=True)
            if bar is not None:
                candles.append(candle_dict(spec, start, bar))
        events = [{"type": "snapshot", "candles": candles}]
        return conn.frames.message("candles", self.clock.now_s(), events)

    def _trades_snapshot(self, conn: CoinbaseConnection, products: list[str], now: int) -> str:
        trades: list[dict[str, str]] = []
        for name in products:
            spec = self.market.by_name[name]
            recent: list[dict[str, str]] = []
            minute = now // MINUTE_MS
            while len(recent) < SNAPSHOT_TRADES and minute > now // MINUTE_MS - 60:
                start = minute * MINUTE_MS
                recent = self._trades(spec, start - 1, min(start + MINUTE_MS - 1, now)) + recent
                minute -= 1
            trades.extend(reversed(recent[-SNAPSHOT_TRADES:]))  # newest first
        events = [{"type": "snapshot", "trades": trades}]
        return conn.frames.message("market_trades", self.clock.now_s(), events)

    # ---- the pump -----------------------------------------------------------------------

    async def _pump(self, conn: CoinbaseConnection) -> None:
        try:
            await asyncio.wait_for(conn.subscribed.wait(), self.config.coinbase_subscribe_timeout_s)
        except TimeoutError:
            await conn.ws.close(code=1000, message=b"subscribe timeout")
            return
        period = max(
            self.config.coinbase_tick_ms / (self.clock.speed * 1000.0), self.config.min_tick_real_s
        )
        last = self.clock.now_ms()
        while not conn.closed:
            await asyncio.sleep(period)
            now = self.clock.now_ms()
            if self.faults.is_stalled("coinbase"):
                # What happens during a stall is never sent. Like every message the venue drops,
                # it still consumes a sequence number, so a client that kept (or opened) a
                # connection through the silence sees the loss as a gap: without that, trades
                # would vanish between contiguous sequence numbers, which Coinbase never does.
                if conn.subs:
                    conn.frames.skip(1)
                last = now
                continue
            try:
                texts = self._tick(conn, last, now)
            except Exception:  # keep the connection's feed alive; the gap shows in the truth
                _log.exception("coinbase tick failed")
                texts = []
            for text in texts:
                await self._send(conn, text)
            last = now

    def _tick(self, conn: CoinbaseConnection, last: int, now: int) -> list[str]:
        out = []
        stamp = self.clock.now_s()
        if "heartbeats" in conn.subs:
            out.append(conn.frames.heartbeat(stamp, now / 1000.0, conn.started))
        trades = conn.subs.get("market_trades")
        if trades:
            out.extend(self._trade_updates(conn, trades, last, now, stamp))
        candles = conn.subs.get("candles")
        if candles:
            out.extend(self._candle_updates(conn, candles, last, now, stamp))
        return out

    def _trade_updates(
        self, conn: CoinbaseConnection, subs: dict[str, int], last: int, now: int, stamp: float
    ) -> list[str]:
        trades: list[dict[str, str]] = []
        for name, since in subs.items():
            spec = self.market.by_name[name]
            trades.extend(self._trades(spec, last, now))
            for minute_start in range(last - last % MINUTE_MS, now - MINUTE_MS + 1, MINUTE_MS):
                # A minute is served once all its trades went out on a subscription that saw it all.
                fresh = minute_start >= since and minute_start + MINUTE_MS > last
                if fresh and self.market.minute_bar(spec, minute_start // MINUTE_MS):
                    self.truth.record("coinbase", name, "1m", minute_start)
        if not trades:
            return []
        chunks = [trades[i : i + 100] for i in range(0, len(trades), 100)]
        return [
            conn.frames.message("market_trades", stamp, [{"type": "update", "trades": chunk}])
            for chunk in chunks
        ]

    def _trades(self, spec: SymbolSpec, after_ms: int, upto_ms: int) -> list[dict[str, str]]:
        """Trades with after_ms < time <= upto_ms (ms resolution), ascending."""
        lo, hi = after_ms * 1000 + 999, upto_ms * 1000 + 999
        out = []
        for minute in range(after_ms // MINUTE_MS, upto_ms // MINUTE_MS + 1):
            data = self.market.minute(spec, minute)
            for i, sl in enumerate(data.slices):
                if sl is None:
                    continue
                for j, t in enumerate(sl.trades):
                    if lo < t.time_us <= hi:
                        out.append(trade_dict(spec, t, minute, i * 4 + j))
        return out

    def _candle_updates(
        self, conn: CoinbaseConnection, subs: dict[str, int], last: int, now: int, stamp: float
    ) -> list[str]:
        candles = []
        boundary = now - now % BUCKET_MS
        for name, since in subs.items():
            spec = self.market.by_name[name]
            if last < boundary:
                # The bucket that just closed goes out once more with all its trades.
                closing = boundary - BUCKET_MS
                bar = traded_bar(self.market, spec, BUCKET_MS, closing, boundary, by_trade=True)
                if bar is not None:
                    candles.append(candle_dict(spec, closing, bar))
                    if closing >= since:
                        self.truth.record("coinbase", name, "5m", closing)
            bar = traded_bar(self.market, spec, BUCKET_MS, boundary, now, by_trade=True)
            if bar is not None:
                candles.append(candle_dict(spec, boundary, bar))
        if not candles:
            return []
        return [conn.frames.message("candles", stamp, [{"type": "update", "candles": candles}])]

    # ---- faults -------------------------------------------------------------------------

    def drop(self) -> int:
        conns = list(self.connections)
        for conn in conns:
            conn.abort()
        return len(conns)

    def inject(self, kind: str, count: int) -> int:
        conns = [c for c in self.connections if c.subs]
        for conn in conns:
            name = next((p for subs in conn.subs.values() for p in subs if p), None)
            spec = self.market.by_name.get(name or "") or self.market.symbols[0]
            texts = [conn.frames.malformed(kind, spec, self.clock.now_s()) for _ in range(count)]
            task = asyncio.create_task(self._send_all(conn, texts))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return len(conns)

    def sequence_skip(self, count: int) -> int:
        for conn in self.connections:
            conn.frames.skip(count)
        return len(self.connections)

    def server_shutdown(self, after_s: float) -> int:
        raise ValueError("serverShutdown is a Binance feature")

    async def aclose(self) -> None:
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"simulator stopping")


def _error(message: str) -> str:
    return msgspec.json.encode({"type": "error", "message": message}).decode()
