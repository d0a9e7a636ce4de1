"""Deterministic seeded markets: price paths, trades and candles, each a pure function of its key.

A base asset's log price (shared by both venues, so BTC-USD tracks BTCUSDT) follows fractal
value noise at hour resolution (random-walk scaling, bounded over months) with a Brownian bridge
inside each hour. Each minute is four 15-second slices; a slice with trades holds up to four
representative trades whose OHLCV *is* the slice (so candles built from trades equal candles
served by REST), plus the venue's trade count. Prices are integer ticks and sizes integer 1e-8
units, so aggregation is exact and REST and WS agree to the last digit.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from services.sim.config import SimConfig
from services.sim.rand import gauss_of, mix
from services.sim.universe import EXCHANGE_SALT, SymbolSpec, build_universe

MINUTE_MS = 60_000
SLICES = 4
SLICE_MS = MINUTE_MS // SLICES
SLICE_US = SLICE_MS * 1000
MAX_REPRESENTATIVE = 4
OCTAVES = 13
# A minute without trades takes the last trade price; the search for it stops here.
MAX_LOOKBACK_MIN = 1440
_CACHE_LIMIT = 400_000
_RECENT_LIMIT = 4096


class Trade(NamedTuple):
    time_us: int
    price: int  # ticks
    size: int  # 1e-8 base units
    buy: bool  # taker side


class Bar(NamedTuple):
    open: int
    high: int
    low: int
    close: int
    volume: int  # 1e-8 base units
    quote: int  # 1e-8 quote units
    trades: int  # the venue's trade count (more than the representative trades)
    taker_volume: int
    taker_quote: int


class Slice(NamedTuple):
    trades: tuple[Trade, ...]
    bar: Bar


class MinuteData(NamedTuple):
    minute: int  # epoch minute index
    slices: tuple[Slice | None, ...]
    bar: Bar | None  # None: no trade in this minute


def merge(bars: Iterable[Bar]) -> Bar | None:
    """OHLCV of consecutive bars (open first, close last, extremes, sums)."""
    out: Bar | None = None
    for b in bars:
        if out is None:
            out = b
            continue
        out = Bar(
            out.open,
            max(out.high, b.high),
            min(out.low, b.low),
            b.close,
            out.volume + b.volume,
            out.quote + b.quote,
            out.trades + b.trades,
            out.taker_volume + b.taker_volume,
            out.taker_quote + b.taker_quote,
        )
    return out


def flat(price: int) -> Bar:
    """The bar of an interval without trades: O=H=L=C=last price, nothing traded."""
    return Bar(price, price, price, price, 0, 0, 0, 0, 0)


def bar_of_trades(trades: Sequence[Trade], decimals: int, count: int) -> Bar:
    prices = [t.price for t in trades]
    scale = 10**decimals
    volume = quote = taker_volume = taker_quote = 0
    for t in trades:
        q = (t.size * t.price + scale // 2) // scale
        volume += t.size
        quote += q
        if t.buy:
            taker_volume += t.size
            taker_quote += q
    return Bar(
        prices[0],
        max(prices),
        min(prices),
        prices[-1],
        volume,
        quote,
        count,
        taker_volume,
        taker_quote,
    )


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(lam + math.sqrt(lam) * _normalish(rng)))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _normalish(rng: random.Random) -> float:
    """Cheap approximately normal draw (sum of three uniforms, variance 1)."""
    return (rng.random() + rng.random() + rng.random() - 1.5) * 2.0


class Market:
    """One exchange's symbols and their deterministic history (any minute, any order)."""

    def __init__(self, exchange: str, config: SimConfig) -> None:
        self.exchange = exchange
        self.seed = config.seed
        self.salt = EXCHANGE_SALT[exchange]
        self.symbols: tuple[SymbolSpec, ...] = build_universe(exchange, config)
        # Only Coinbase shows trades (market_trades); Binance minutes are drawn as bars directly,
        # which is several times cheaper (the firehose and big backfills depend on it).
        self.trade_level = exchange == "coinbase"
        self.by_name = {s.name: s for s in self.symbols}
        self._paths: dict[tuple[int, int], list[float]] = {}
        self._minutes: dict[tuple[int, int], Bar | None] = {}
        # Full minutes (with slices and trades) recently asked for: the forming minute is
        # needed at every phase and by every stream of a symbol.
        self._recent: dict[tuple[int, int], MinuteData] = {}
        # Merged closed minutes of a bucket so far: (symbol, start minute, step) -> (end, bar)
        self._prefixes: dict[tuple[int, int, int], tuple[int, Bar | None]] = {}

    # ---- price path ---------------------------------------------------------------------

    def _anchor(self, spec: SymbolSpec, hour: int) -> float:
        """Log price at an hour boundary: octaves of value noise with random-walk scaling."""
        sigma_hour = spec.sigma * math.sqrt(60.0)
        x = math.log(spec.base_price)
        for k in range(OCTAVES):
            span = 1 << k
            i, rem = divmod(hour, span)
            g0 = gauss_of(mix(self.seed, spec.index, k, i))
            g1 = gauss_of(mix(self.seed, spec.index, k, i + 1))
            x += sigma_hour * math.sqrt(span / 8.0) * (g0 + (g1 - g0) * rem / span)
        return x

    def _hour_path(self, spec: SymbolSpec, hour: int) -> list[float]:
        key = (spec.index, hour)
        path = self._paths.get(key)
        if path is None:
            a0, a1 = self._anchor(spec, hour), self._anchor(spec, hour + 1)
            rng = random.Random(mix(self.seed, spec.index, hour, 17))
            walk = [0.0]
            for _ in range(60):
                walk.append(walk[-1] + spec.sigma * _normalish(rng))
            end = walk[60]
            path = [a0 + (a1 - a0) * j / 60 + walk[j] - end * j / 60 for j in range(61)]
            self._remember(self._paths, key, path)
        return path

    def log_price(self, spec: SymbolSpec, minute: int) -> float:
        hour, j = divmod(minute, 60)
        return self._hour_path(spec, hour)[j]

    def ticks(self, spec: SymbolSpec, log_price: float) -> int:
        ticks: int = max(1, round(math.exp(log_price) * 10**spec.decimals))
        return ticks

    # ---- minutes ------------------------------------------------------------------------

    def minute(self, spec: SymbolSpec, minute: int) -> MinuteData:
        """Trades and bars of one minute (bars cached long, full minutes briefly)."""
        key = (spec.index, minute)
        data = self._recent.get(key)
        if data is None:
            if len(self._recent) >= _RECENT_LIMIT:
                self._recent.clear()
            data = self._recent[key] = self._generate(spec, minute)
        return data

    def closed_prefix(self, spec: SymbolSpec, first: int, end: int, step: int) -> Bar | None:
        """Merged bar of the traded minutes first..end-1 of one bucket, extended incrementally
        (a forming daily kline would otherwise re-merge up to 1440 minutes at every update)."""
        key = (spec.index, first, step)
        done, bar = self._prefixes.get(key, (first, None))
        if done > end:
            done, bar = first, None
        for m in range(done, end):
            minute_bar = self.minute_bar(spec, m)
            if minute_bar is not None:
                bar = minute_bar if bar is None else merge((bar, minute_bar))
        self._remember(self._prefixes, key, (end, bar))
        return bar

    def _generate(self, spec: SymbolSpec, minute: int) -> MinuteData:
        # Tuple hashes of ints are stable across runs (no hash randomisation for ints).
        rng = random.Random(hash((self.seed, self.salt, spec.index, minute)))
        x0, x1 = self.log_price(spec, minute), self.log_price(spec, minute + 1)
        points = [x0]
        for s in range(1, SLICES):
            noise = spec.sigma * 0.5 * _normalish(rng)
            points.append(x0 + (x1 - x0) * s / SLICES + noise)
        points.append(x1)
        lam = spec.trades_per_minute / SLICES
        per_count = spec.quote_volume_24h / 1440.0 / SLICES / lam if lam > 0 else 0.0
        slices: list[Slice | None] = []
        for s in range(SLICES):
            count = _poisson(rng, lam)
            if count == 0:
                slices.append(None)
                continue
            start_us = (minute * MINUTE_MS + s * SLICE_MS) * 1000
            ends = (points[s], points[s + 1])
            make = self._slice if self.trade_level else self._slice_bar
            slices.append(make(rng, spec, start_us, ends, count, per_count * count))
        bar = merge(sl.bar for sl in slices if sl is not None)
        self._remember(self._minutes, (spec.index, minute), bar)
        return MinuteData(minute, tuple(slices), bar)

    def _slice(
        self,
        rng: random.Random,
        spec: SymbolSpec,
        start_us: int,
        ends: tuple[float, float],
        count: int,
        quote_target: float,
    ) -> Slice:
        """Up to four trades along the path, sizes splitting the slice's quote volume, and
        their bar (computed in the same pass: this is the simulator's hottest loop)."""
        x0, dx = ends[0], ends[1] - ends[0]
        k = min(count, MAX_REPRESENTATIVE)
        rand = rng.random
        offsets = sorted([rand() for _ in range(k)])
        weights = [0.2 + rand() for _ in range(k)]
        scale = 10**spec.decimals
        per_weight = quote_target / sum(weights) * 1e8 * scale
        micro = spec.sigma * 0.3
        exp = math.exp
        trades = []
        high, low = 0, 1 << 62
        volume = quote = taker_volume = taker_quote = 0
        half = scale // 2
        for u, w in zip(offsets, weights, strict=True):
            price = max(1, round(exp(x0 + dx * u + micro * (rand() + rand() - 1.0)) * scale))
            size = max(1, round(w * per_weight / price))
            buy = rand() < 0.5
            trades.append(Trade(start_us + int(u * SLICE_US), price, size, buy))
            high = max(high, price)
            low = min(low, price)
            q = (size * price + half) // scale
            volume += size
            quote += q
            if buy:
                taker_volume += size
                taker_quote += q
        bar = Bar(
            trades[0].price,
            high,
            low,
            trades[-1].price,
            volume,
            quote,
            count,
            taker_volume,
            taker_quote,
        )
        return Slice(tuple(trades), bar)

    def _slice_bar(
        self,
        rng: random.Random,
        spec: SymbolSpec,
        start_us: int,
        ends: tuple[float, float],
        count: int,
        quote_target: float,
    ) -> Slice:
        """A slice drawn as a bar: open and close near the path, wicks beyond them."""
        rand = rng.random
        scale = 10**spec.decimals
        micro = spec.sigma * 0.3
        open_ = max(1, round(math.exp(ends[0] + micro * (rand() - 0.5)) * scale))
        close = max(1, round(math.exp(ends[1] + micro * (rand() - 0.5)) * scale))
        if count == 1:
            close = open_
        wick = 1.0 + micro * rand() if count > 2 else 1.0
        high = max(open_, close, round(max(open_, close) * wick))
        low = max(1, min(open_, close, round(min(open_, close) / wick)))
        volume = max(
            1, round(quote_target * (0.6 + 0.8 * rand()) * 1e8 * 2 / (open_ + close) * scale)
        )
        quote = (volume * (open_ + close) // 2 + scale // 2) // scale
        taker = 0.2 + 0.6 * rand()
        taker_volume = int(volume * taker)
        taker_quote = int(quote * taker)
        bar = Bar(open_, high, low, close, volume, quote, count, taker_volume, taker_quote)
        return Slice((), bar)

    def minute_bar(self, spec: SymbolSpec, minute: int) -> Bar | None:
        """The minute's bar, or None when nothing traded (cached)."""
        key = (spec.index, minute)
        if key in self._minutes:
            return self._minutes[key]
        return self._generate(spec, minute).bar

    def last_price_before(self, spec: SymbolSpec, minute: int) -> int:
        """Close of the last minute with trades before `minute` (bounded search)."""
        for m in range(minute - 1, minute - 1 - MAX_LOOKBACK_MIN, -1):
            bar = self.minute_bar(spec, m)
            if bar is not None:
                return bar.close
        return self.ticks(spec, self.log_price(spec, minute))

    def _remember(self, cache: dict, key: object, value: object) -> None:  # type: ignore[type-arg]
        if len(cache) >= _CACHE_LIMIT:
            # Oldest-inserted first: dicts keep insertion order, cheap enough as an LRU stand-in.
            for old in list(cache)[: _CACHE_LIMIT // 4]:
                del cache[old]
        cache[key] = value


def markets(config: SimConfig) -> dict[str, Market]:
    return {name: Market(name, config) for name in EXCHANGE_SALT}
