"""Close detection for Coinbase candles (pure: no I/O, the venue clock is passed in).

5m, `candles` channel: Coinbase re-sends the forming bucket; a bucket is closed when a later
`start` arrives for that product, and its final values are the last update seen for it.

1m, `market_trades`: OHLC from trade prices, volume = sum of sizes, bucket = trade time floored
to the minute. A minute closes when the venue clock (heartbeat `current_time`, message and trade
times) passes its end plus a grace, so a quiet product still closes on time; a minute without
trades yields no candle (Coinbase has no empty buckets either). The minute in progress when a
product is first watched may have had trades before the subscription: it is only trusted when the
`market_trades` snapshot reaches back before it; otherwise its close yields a `FeedGap` for that
product (the caller fetches it by REST) instead of a partial candle. A trade arriving for a minute
already closed also yields a `FeedGap`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from livermore_common.exchanges.base import ClosedCandle, FeedEvent, FeedGap
from livermore_common.exchanges.validation import units_to_float
from livermore_common.messages import Candle
from livermore_common.timeframes import MINUTE_MS


class CandleChannelTracker:
    """The forming bucket per product; a later start closes it with its last update seen.

    `expect(product, since)` records the venue time of the subscription: when the first update
    is for a bucket after the one in progress then, closes were missed in between (`FeedGap`).
    """

    def __init__(self, *, timeframe: str = "5m", interval_ms: int = 5 * MINUTE_MS) -> None:
        self.timeframe = timeframe
        self.interval = interval_ms
        self._current: dict[str, Candle] = {}
        self._since: dict[str, int] = {}

    def expect(self, product: str, since_ms: int) -> None:
        if product not in self._current:
            self._since[product] = since_ms

    def update(self, product: str, candle: Candle, now_ms: int) -> list[FeedEvent]:
        current = self._current.get(product)
        if current is None:
            self._current[product] = candle
            since = self._since.pop(product, None)
            if since is not None and candle.timestamp > since - since % self.interval:
                reason = f"{self.timeframe} buckets closed before the subscription began"
                return [FeedGap(reason=reason, symbols=(product,))]
            return []
        if candle.timestamp < current.timestamp:
            return []  # a stale re-send of a bucket already superseded
        self._current[product] = candle
        if candle.timestamp == current.timestamp:
            return []
        return [
            ClosedCandle(
                symbol=product, timeframe=self.timeframe, candle=current, exchange_time=now_ms
            )
        ]

    def forget(self, product: str) -> None:
        self._current.pop(product, None)
        self._since.pop(product, None)


class SeenTrades:
    """Drops trades seen before: a snapshot and the first updates after it may overlap.

    Coinbase trade ids are increasing integers per product, so the highest id seen is enough;
    ids that are not integers fall back to remembering the last `memory` ids of the product.
    """

    def __init__(self, memory: int = 4096) -> None:
        self._highest: dict[str, int] = {}
        self._recent: dict[str, tuple[deque[str], set[str]]] = {}
        self._memory = memory

    def fresh(self, product: str, trade_id: str) -> bool:
        if trade_id.isdigit():
            number = int(trade_id)
            if number <= self._highest.get(product, -1):
                return False
            self._highest[product] = number
            return True
        order, ids = self._recent.setdefault(product, (deque(), set()))
        if trade_id in ids:
            return False
        order.append(trade_id)
        ids.add(trade_id)
        if len(order) > self._memory:
            ids.discard(order.popleft())
        return True

    def forget(self, product: str) -> None:
        self._highest.pop(product, None)
        self._recent.pop(product, None)


@dataclass(slots=True)
class _Bar:
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: int  # exact, in 1e-12 units

    def add(self, price: float, size: int) -> None:
        if price > self.high:
            self.high = price
        elif price < self.low:
            self.low = price
        self.close = price
        self.volume += size

    def candle(self) -> Candle:
        return Candle(
            timestamp=self.start,
            open=self.open,
            high=self.high,
            low=self.low,
            close=self.close,
            volume=units_to_float(self.volume),
        )


@dataclass(slots=True)
class _Product:
    floor: int  # first bucket this builder may emit
    uncertain: int | None  # bucket that may have missed trades from before we watched
    closed_upto: int = -1
    late_gap: int = -1  # last closed bucket a late trade was reported for (once per bucket)
    bars: dict[int, _Bar] = field(default_factory=dict)


class TradeCandleBuilder:
    """1m candles from trades, closed on the venue clock plus `grace_ms`."""

    def __init__(self, *, timeframe: str = "1m", grace_ms: int = 2_000) -> None:
        self.timeframe = timeframe
        self.interval = MINUTE_MS
        self.grace = grace_ms
        self.now = 0
        self._products: dict[str, _Product] = {}
        self._next_deadline: int | None = None

    def _bucket(self, ts: int) -> int:
        return ts - ts % self.interval

    def watch(self, product: str, now_ms: int, since_ms: int | None = None) -> list[FeedEvent]:
        """Start building for `product`; the bucket in progress at `now_ms` is not yet trusted.

        `since_ms` = venue time of the subscription request: minutes that closed between it and
        `now_ms` were seen by nobody, so they are reported as a gap.
        """
        if product in self._products:
            return []
        bucket = self._bucket(now_ms)
        self._products[product] = _Product(floor=bucket + self.interval, uncertain=bucket)
        self._schedule(bucket)
        if since_ms is not None and bucket > self._bucket(since_ms):
            return [
                FeedGap(reason="minutes closed before the subscription began", symbols=(product,))
            ]
        return []

    def forget(self, product: str) -> None:
        self._products.pop(product, None)

    @property
    def watched(self) -> frozenset[str]:
        return frozenset(self._products)

    def prove_complete_after(self, product: str, oldest_trade_ms: int) -> None:
        """The snapshot holds every trade since `oldest_trade_ms`: later buckets are complete."""
        state = self._products.get(product)
        if state is None or state.uncertain is None:
            return
        if self._bucket(oldest_trade_ms) + self.interval <= state.uncertain:
            state.floor = min(state.floor, state.uncertain)
            state.uncertain = None

    def invalidate(self, now_ms: int) -> None:
        """Trades may have been lost (sequence gap): distrust every open minute, as at start."""
        bucket = self._bucket(max(now_ms, self.now))
        for state in self._products.values():
            state.bars.clear()
            state.floor = max(state.floor, bucket + self.interval)
            state.uncertain = bucket if state.closed_upto < bucket else None
        self._schedule(bucket)

    def add_trade(self, product: str, time_ms: int, price: float, size: int) -> list[FeedEvent]:
        """Add a trade; `size` in exact 1e-12 units (`validation.volume_units`)."""
        state = self._products.get(product)
        if state is None:
            return []
        bucket = self._bucket(time_ms)
        if bucket <= state.closed_upto:
            if bucket <= state.late_gap:
                return []
            state.late_gap = state.closed_upto
            return [FeedGap(reason="late trade for a closed minute", symbols=(product,))]
        if bucket < state.floor:
            return []  # before we watched, or in the untrusted first minute
        bar = state.bars.get(bucket)
        if bar is None:
            state.bars[bucket] = _Bar(bucket, price, price, price, price, size)
            self._schedule(bucket)
        else:
            bar.add(price, size)
        return []

    def _schedule(self, bucket: int) -> None:
        deadline = bucket + self.interval + self.grace
        if self._next_deadline is None or deadline < self._next_deadline:
            self._next_deadline = deadline

    def advance(self, now_ms: int) -> list[FeedEvent]:
        """Move the venue clock; return what closed (ascending per product)."""
        if now_ms > self.now:
            self.now = now_ms
        if self._next_deadline is None or self.now < self._next_deadline:
            return []
        self._next_deadline = None
        events: list[FeedEvent] = []
        for product, state in self._products.items():
            events.extend(self._close_due(product, state))
        return events

    def _close_due(self, product: str, state: _Product) -> Iterable[FeedEvent]:
        span = self.interval + self.grace
        if state.uncertain is not None:
            if state.uncertain + span <= self.now:
                state.closed_upto = max(state.closed_upto, state.uncertain)
                state.late_gap = state.closed_upto  # the gap below already covers late trades
                state.uncertain = None
                yield FeedGap(
                    reason="first minute after subscribing may be incomplete", symbols=(product,)
                )
            else:
                self._schedule(state.uncertain)
        for start in sorted(state.bars):
            if start + span > self.now:
                self._schedule(start)
                break
            bar = state.bars.pop(start)
            state.closed_upto = start
            yield ClosedCandle(
                symbol=product,
                timeframe=self.timeframe,
                candle=bar.candle(),
                exchange_time=self.now,
            )
