"""Coinbase Advanced Trade live feed: one socket, one channel per subscribe message.

`heartbeats` is always subscribed (Coinbase closes quiet subscriptions, and its `current_time`
is the venue clock that closes 1m candles). `candles` gives 5m, `market_trades` gives 1m
(see candles.py). `sequence_num` counts every message of the connection: a skip means a lost
message and yields `FeedGap` for every product.

The clock (heartbeat `current_time`, message and trade times) closes 1m minutes only once a
message with a *later* send `timestamp` arrives: messages sent at the same instant (a heartbeat
and the trades of that instant, or one batch of trades split over several messages) are all
handled first, so their order on the wire cannot close a minute before its last trades are in.
With heartbeats every second this costs at most a second on a quiet connection.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import msgspec
from websockets.exceptions import ConnectionClosed

from livermore_common.errors import AuthenticationError, TransientError
from livermore_common.exchanges.base import (
    AdapterOptions,
    ClosedCandle,
    FeedEvent,
    FeedGap,
    Heartbeat,
)
from livermore_common.exchanges.coinbase import parse
from livermore_common.exchanges.coinbase import schemas as s
from livermore_common.exchanges.coinbase.candles import (
    CandleChannelTracker,
    SeenTrades,
    TradeCandleBuilder,
)
from livermore_common.exchanges.ratelimit import RateLimiter
from livermore_common.exchanges.validation import InvalidFrame
from livermore_common.exchanges.ws import FeedBase, ObservedConnection, open_socket

HEARTBEATS, CANDLES, MARKET_TRADES = "heartbeats", "candles", "market_trades"
CHANNEL_TIMEFRAME = {CANDLES: "5m", MARKET_TRADES: "1m"}
_encoder = msgspec.json.Encoder()


def _trade_order(trade: parse.Trade) -> tuple[int, int, str]:
    """Oldest first, and by trade id within a millisecond (numeric ids compare by length, then
    text). A snapshot comes newest first: ordered by time alone, two trades of one millisecond
    stayed newest first, and the older one then looked like a repeat of an id already seen."""
    return trade.time_ms, len(trade.trade_id), trade.trade_id


class CoinbaseFeed(FeedBase):
    stall_timeout_default = 5.0  # heartbeats arrive every second

    def __init__(
        self,
        *,
        ws_url: str,
        products: Sequence[str],
        timeframes: Sequence[str],
        options: AdapterOptions,
        send_limiter: RateLimiter,
        jwt_factory: Callable[[], str | None],
        opened_at: int | None = None,
    ) -> None:
        """`opened_at`: venue time at opening, up to which the caller backfills; buckets that
        close after it without the feed seeing them are reported as FeedGap."""
        super().__init__(venue="coinbase", options=options)
        self._url = ws_url
        self._products = list(dict.fromkeys(products))
        self._wanted = set(self._products)
        self._channels = [c for c, tf in CHANNEL_TIMEFRAME.items() if tf in timeframes]
        self._send_limiter = send_limiter
        self._jwt = jwt_factory
        self._candles = CandleChannelTracker()
        self._trades = TradeCandleBuilder(grace_ms=options.trade_close_grace_ms)
        self._seen = SeenTrades()
        self._since: dict[str, int] = {}  # product -> venue time it was requested at
        if opened_at is not None:
            self._expect(self._products, opened_at)
        self._last_seq: int | None = None
        # Venue clock seen so far, applied to the 1m builder once a later send time shows up.
        self._pending_clock = 0
        self._batch_stamp = 0
        self._conn: ObservedConnection | None = None
        self._stalled = False

    def _expect(self, products: Sequence[str], since: int) -> None:
        for product in products:
            self._since[product] = since
            self._candles.expect(product, since)

    @property
    def products(self) -> tuple[str, ...]:
        return tuple(self._products)

    async def start(self) -> None:
        conn = self._conn = await open_socket(self._url, self.options)
        conn.on_ping = self._on_ping
        await self._send("subscribe", HEARTBEATS, None)
        for channel in self._channels:
            await self._send("subscribe", channel, self._products)
        self._spawn(self._pump(conn), "reader")
        stall = self.options.stall_timeout_s or self.stall_timeout_default
        self._spawn(self._watch(conn, stall, self._on_stall), "watchdog")

    async def _pump(self, conn: ObservedConnection) -> None:
        why = await self._pump_socket(conn, lambda _ws, data: self.handle_frame(data))
        if not self._closed:
            await self._fail(
                TransientError(f"coinbase WebSocket {'stalled' if self._stalled else why}")
            )

    def _on_stall(self) -> None:
        self._stalled = True

    async def _send(self, kind: str, channel: str, products: Sequence[str] | None) -> None:
        assert self._conn is not None
        request = s.SubscribeRequest(
            type="subscribe" if kind == "subscribe" else "unsubscribe",
            channel=channel,
            product_ids=list(products) if products is not None else None,
            jwt=self._jwt(),
        )
        await self._send_limiter.acquire()
        try:
            await self._conn.send(_encoder.encode(request).decode())
        except ConnectionClosed:
            raise TransientError("coinbase WebSocket closed while subscribing") from None

    async def update_symbols(self, symbols: Sequence[str]) -> None:
        wanted = list(dict.fromkeys(symbols))
        added = [p for p in wanted if p not in self._products]
        removed = [p for p in self._products if p not in wanted]
        for channel in self._channels:
            if removed:
                await self._send("unsubscribe", channel, removed)
            if added:
                await self._send("subscribe", channel, added)
        if self._trades.now:
            self._expect(added, self._trades.now)
        for product in removed:
            self._since.pop(product, None)
            self._candles.forget(product)
            self._trades.forget(product)
            self._seen.forget(product)
        self._products = wanted
        self._wanted = set(wanted)

    async def _close_sockets(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    # ---- frames -----------------------------------------------------------------------------

    def handle_frame(self, data: str | bytes) -> list[FeedEvent] | None:
        """Turn one frame into events (public for tests and benchmarks; no I/O)."""
        try:
            msg = parse.decode_ws(data)
        except InvalidFrame as exc:
            return [self.dropped(str(exc))]
        if isinstance(msg, s.WsError):
            return self._on_error(msg)
        # Handlers append to `events` as they go, so a bad record late in a frame cannot
        # swallow the candles already closed by earlier ones.
        events: list[FeedEvent] = []
        try:
            now = parse.parse_time_ms(msg.timestamp)
            if now > self._batch_stamp:
                # A newer send time: every message sent before it has been handled, so the clock
                # they showed can close minutes now (see the module docstring).
                self._batch_stamp = now
                events.extend(self._trades.advance(self._pending_clock))
            self._check_sequence(msg.sequence_num, now, events)
            if isinstance(msg, s.HeartbeatsMessage):
                self._on_heartbeats(msg, events)
            elif isinstance(msg, s.CandlesMessage):
                self._on_candles(msg, now, events)
            elif isinstance(msg, s.MarketTradesMessage):
                self._on_trades(msg, now, events)
            elif isinstance(msg, s.SubscriptionsMessage):
                self._on_subscriptions(msg, now, events)
            self._note_clock(now)
        except InvalidFrame as exc:
            events.append(self.dropped(str(exc)))
        self._count(events)
        return events

    def _note_clock(self, venue_ms: int) -> None:
        if venue_ms > self._pending_clock:
            self._pending_clock = venue_ms

    def _count(self, events: list[FeedEvent]) -> None:
        for event in events:
            if isinstance(event, ClosedCandle):
                self.stats.closed_candles += 1
            elif isinstance(event, FeedGap):
                self.stats.gaps += 1

    def _check_sequence(self, seq: int, now: int, events: list[FeedEvent]) -> None:
        last = self._last_seq
        if last is None or seq > last:
            self._last_seq = seq
        if last is not None and seq > last + 1:
            reason = f"sequence gap: {last} -> {seq}"
            # Lost messages may have carried trades of the open minutes: do not close them.
            self._trades.invalidate(now)
            events.append(FeedGap(reason=reason, symbols=tuple(self._products)))

    def _on_error(self, msg: s.WsError) -> list[FeedEvent] | None:
        if "auth" in msg.message.lower():
            error = AuthenticationError(f"coinbase refused the subscription: {msg.message[:200]}")
            self._spawn(self._fail(error), "fail")
            return None
        return [self.dropped(f"venue error: {msg.message}")]

    def _on_heartbeats(self, msg: s.HeartbeatsMessage, events: list[FeedEvent]) -> None:
        for ev in msg.events:
            clock = parse.parse_time_ms(ev.current_time)
            self.stats.heartbeats += 1
            events.append(Heartbeat(exchange_time=clock))
            self._note_clock(clock)

    def _on_candles(self, msg: s.CandlesMessage, now: int, events: list[FeedEvent]) -> None:
        wanted = self._wanted
        for ev in msg.events:
            # A snapshot may list several buckets; feed them oldest first.
            for raw in sorted(ev.candles, key=lambda c: c.start):
                if raw.product_id not in wanted:
                    continue
                try:
                    candle = parse.ws_candle(raw)
                except InvalidFrame as exc:
                    events.append(self.dropped(f"bad candle: {exc}"))
                    continue
                events.extend(self._candles.update(raw.product_id, candle, now))

    def _on_subscriptions(
        self, msg: s.SubscriptionsMessage, now: int, events: list[FeedEvent]
    ) -> None:
        # The acknowledgement proves the subscription is live from `now` on.
        wanted = self._wanted
        for ev in msg.events:
            for product in ev.subscriptions.get(MARKET_TRADES, ()):
                if product in wanted:
                    events.extend(self._watch_trades(product, now))

    def _watch_trades(self, product: str, now: int) -> list[FeedEvent]:
        return self._trades.watch(product, now, self._since.pop(product, None))

    def _on_trades(self, msg: s.MarketTradesMessage, now: int, events: list[FeedEvent]) -> None:
        wanted = self._wanted
        for ev in msg.events:
            by_product: dict[str, list[parse.Trade]] = defaultdict(list)
            for raw in ev.trades:
                if raw.product_id not in wanted:
                    continue
                try:
                    trade = parse.trade(raw)
                except InvalidFrame as exc:
                    # A lost trade makes the open minutes unreliable: repair them from REST.
                    events.append(self.dropped(f"bad trade: {exc}"))
                    self._trades.invalidate(now)
                    events.append(FeedGap(reason="dropped trade", symbols=(raw.product_id,)))
                    continue
                by_product[raw.product_id].append(trade)
            for product, trades in by_product.items():
                trades.sort(key=_trade_order)
                events.extend(self._watch_trades(product, now))
                if ev.type == "snapshot":
                    self._trades.prove_complete_after(product, trades[0].time_ms)
                for t in trades:
                    if self._seen.fresh(product, t.trade_id):
                        events.extend(
                            self._trades.add_trade(product, t.time_ms, t.price, t.size_units)
                        )
                self._note_clock(trades[-1].time_ms)
