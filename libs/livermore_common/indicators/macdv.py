"""MACD-V (volatility-normalised MACD) with signal, histogram, stage and liquidity metadata.

MACD-V = (EMA12(close) - EMA26(close)) / ATR26 * 100; signal = EMA9(MACD-V) started at MACD-V's
first defined bar; histogram = MACD-V - signal. Series may hold synthetic bars (missing buckets,
see `gaps.py`): they count as bars for the EMAs of the close, but their true range is undefined,
so the ATR carries forward over them and seeds from the first 26 *observed* true ranges.

Two forms that agree: `macdv_series` (batch, from lists) and `MacdVState` (incremental, O(1) per
bar, msgpack-serializable so any worker can continue a series).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Final, Literal

import msgspec

from livermore_common.indicators.gaps import fill_gaps, mark_synthetic
from livermore_common.indicators.ma import ema
from livermore_common.indicators.stages import Stage, classify_stage
from livermore_common.indicators.volatility import atr as atr_series
from livermore_common.messages import Candle

FAST_PERIOD: Final = 12
SLOW_PERIOD: Final = 26
ATR_PERIOD: Final = 26
SIGNAL_PERIOD: Final = 9
SCALE: Final = 100.0

REASON_LOW_ACTIVITY: Final = "Low trading activity"
REASON_WARMING_UP: Final = "Insufficient history"
REASON_FLAT: Final = "No price movement (ATR is 0)"

Liquidity = Literal["high", "medium", "low"]


class OutOfOrderCandleError(ValueError):
    """A candle not strictly after the last bar of the series: rebuild instead of updating."""


class MacdVPoint(msgspec.Struct, frozen=True):
    """MACD-V at one bar; values are None where undefined. Fields in this order (`_point`
    builds it positionally)."""

    timestamp: int
    close: float
    synthetic: bool
    macd_v: float | None
    signal: float | None
    histogram: float | None
    fast_ema: float | None
    slow_ema: float | None
    atr: float | None
    stage: Stage
    # ATR seeded (26 observed true ranges); without it there is no value.
    seeded: bool
    n_eff: int
    bars: int
    gap_ratio: float
    liquidity: Liquidity
    reason: str | None


def liquidity_of(gap_ratio: float) -> Liquidity:
    """`high` below 20 % synthetic bars, `medium` below 50 %, else `low`."""
    if gap_ratio < 0.2:
        return "high"
    if gap_ratio < 0.5:
        return "medium"
    return "low"


def _point(
    timestamp: int,
    close: float,
    synthetic: bool,
    fast: float | None,
    slow: float | None,
    atr: float | None,
    macd_v: float | None,
    signal: float | None,
    n_eff: int,
    bars: int,
    synthetic_bars: int,
) -> MacdVPoint:
    histogram = None if macd_v is None or signal is None else macd_v - signal
    gap_ratio = synthetic_bars / bars
    if atr is None:
        reason: str | None = REASON_LOW_ACTIVITY if synthetic_bars else REASON_WARMING_UP
    else:
        reason = REASON_FLAT if macd_v is None else None
    # Positional (field order): ~10x cheaper than keywords, and this runs once per close.
    return MacdVPoint(
        timestamp,
        close,
        synthetic,
        macd_v,
        signal,
        histogram,
        fast,
        slow,
        atr,
        classify_stage(macd_v, signal),
        atr is not None,
        n_eff,
        bars,
        gap_ratio,
        liquidity_of(gap_ratio),
        reason,
    )


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else x


def macdv_series(
    candles: Sequence[Candle],
    interval_ms: int | None = None,
    *,
    synthetic: Sequence[bool] | None = None,
    fast_period: int = FAST_PERIOD,
    slow_period: int = SLOW_PERIOD,
    atr_period: int = ATR_PERIOD,
    signal_period: int = SIGNAL_PERIOD,
    scale: float = SCALE,
) -> list[MacdVPoint]:
    """MACD-V for every bar, oldest first.

    With `interval_ms`, missing buckets are first filled with synthetic bars (which get points of
    their own, flagged `synthetic`). Alternatively `synthetic` flags bars explicitly.
    """
    if interval_ms is not None and synthetic is not None:
        raise ValueError("give either interval_ms (gap filling) or explicit synthetic flags")
    if interval_ms is not None:
        series = fill_gaps(candles, interval_ms)
    else:
        series = mark_synthetic(candles, synthetic)
    bars, flags = series.candles, series.synthetic
    closes = [c.close for c in bars]
    fast = ema(closes, fast_period)
    slow = ema(closes, slow_period)
    atr = atr_series(bars, atr_period, flags)
    macd = [_macdv_or_nan(f, s, a, scale) for f, s, a in zip(fast, slow, atr, strict=True)]
    signal = ema(macd, signal_period)
    points: list[MacdVPoint] = []
    n_eff = synthetic_bars = 0
    for i, candle in enumerate(bars):
        if flags[i]:
            synthetic_bars += 1
        else:
            n_eff += 1
        m = _opt(macd[i])
        s = _opt(signal[i]) if m is not None else None
        points.append(
            _point(
                candle.timestamp,
                candle.close,
                flags[i],
                _opt(fast[i]),
                _opt(slow[i]),
                _opt(atr[i]),
                m,
                s,
                n_eff,
                i + 1,
                synthetic_bars,
            )
        )
    return points


def _macdv_or_nan(fast: float, slow: float, atr: float, scale: float) -> float:
    if math.isnan(fast) or math.isnan(slow) or math.isnan(atr) or atr == 0.0:
        return math.nan
    return (fast - slow) / atr * scale


class MacdVState(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Incremental MACD-V of one series: O(1) per bar, about 150 bytes as msgpack.

    `fast`, `slow`, `atr` and `signal` hold running sums while their average is seeding (the seed
    is the simple mean of the first n inputs) and the average itself afterwards; the counters say
    which. `interval_ms` > 0 turns on gap filling in `update`.
    """

    interval_ms: int = 0
    fast_period: int = FAST_PERIOD
    slow_period: int = SLOW_PERIOD
    atr_period: int = ATR_PERIOD
    signal_period: int = SIGNAL_PERIOD
    scale: float = SCALE
    bars: int = 0
    synthetic_bars: int = 0
    n_eff: int = 0
    macd_count: int = 0
    last_timestamp: int = 0
    last_close: float = 0.0
    fast: float = 0.0
    slow: float = 0.0
    atr: float = 0.0
    signal: float = 0.0

    def __post_init__(self) -> None:
        periods = (self.fast_period, self.slow_period, self.atr_period, self.signal_period)
        if min(periods) < 1:
            raise ValueError(f"periods must be at least 1, got {periods}")

    def to_bytes(self) -> bytes:
        return _encoder.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> MacdVState:
        return _decoder.decode(data)

    def update(self, candle: Candle) -> MacdVPoint:
        """Add a closed candle, first filling any missing buckets since the last one.

        Each missing bucket costs one cheap synthetic step (no allocation); a candle not after
        the last one raises `OutOfOrderCandleError` and leaves the state untouched.
        """
        ts = candle.timestamp
        step = self.interval_ms
        if self.bars and step > 0:
            last = self.last_timestamp
            if ts <= last:
                raise OutOfOrderCandleError(f"candle {ts} is not after {last}")
            # Synthetic bars produce no points: only the real candle is reported.
            last += step
            while last < ts:
                self._advance(last, self.last_close, self.last_close, self.last_close, True)
                last += step
        elif self.bars and ts <= self.last_timestamp:
            raise OutOfOrderCandleError(f"candle {ts} is not after {self.last_timestamp}")
        m = self._advance(ts, candle.high, candle.low, candle.close, False)
        return self._current_point(False, m)

    def step(self, candle: Candle, synthetic: bool = False) -> MacdVPoint:
        """Add exactly this bar (no gap filling); `synthetic` marks a missing observation."""
        if self.bars and candle.timestamp <= self.last_timestamp:
            raise OutOfOrderCandleError(f"candle {candle.timestamp} is not after the last bar")
        m = self._advance(candle.timestamp, candle.high, candle.low, candle.close, synthetic)
        return self._current_point(synthetic, m)

    def feed(self, candles: Iterable[Candle]) -> MacdVPoint | None:
        """`update` with each candle in turn; the point of the last one (None if none)."""
        point = None
        for candle in candles:
            point = self.update(candle)
        return point

    def _advance(
        self, ts: int, high: float, low: float, close: float, synthetic: bool
    ) -> float | None:
        bars = self.bars + 1
        fast_p, slow_p = self.fast_period, self.slow_period
        if bars > fast_p:
            self.fast += 2.0 / (fast_p + 1) * (close - self.fast)
        else:
            self.fast = (self.fast + close) / fast_p if bars == fast_p else self.fast + close
        if bars > slow_p:
            self.slow += 2.0 / (slow_p + 1) * (close - self.slow)
        else:
            self.slow = (self.slow + close) / slow_p if bars == slow_p else self.slow + close
        if synthetic:
            self.synthetic_bars += 1
        else:
            self._observe(bars, high, low)
        self.bars = bars
        self.last_timestamp = ts
        self.last_close = close
        if bars < fast_p or bars < slow_p or self.n_eff < self.atr_period or self.atr == 0.0:
            return None
        m = (self.fast - self.slow) / self.atr * self.scale
        count = self.macd_count = self.macd_count + 1
        n = self.signal_period
        if count > n:
            self.signal += 2.0 / (n + 1) * (m - self.signal)
        else:
            self.signal = (self.signal + m) / n if count == n else self.signal + m
        return m

    def _observe(self, bars: int, high: float, low: float) -> None:
        if bars == 1:
            tr = high - low
        else:
            c = self.last_close
            tr = max(high - low, abs(high - c), abs(low - c))
        n_eff = self.n_eff = self.n_eff + 1
        n = self.atr_period
        if n_eff > n:
            self.atr = (self.atr * (n - 1) + tr) / n
        else:
            self.atr = (self.atr + tr) / n if n_eff == n else self.atr + tr

    def _current_point(self, synthetic: bool, macd_v: float | None) -> MacdVPoint:
        bars = self.bars
        atr = self.atr if self.n_eff >= self.atr_period else None
        return _point(
            self.last_timestamp,
            self.last_close,
            synthetic,
            self.fast if bars >= self.fast_period else None,
            self.slow if bars >= self.slow_period else None,
            atr,
            macd_v,
            self.signal if macd_v is not None and self.macd_count >= self.signal_period else None,
            self.n_eff,
            bars,
            self.synthetic_bars,
        )


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(MacdVState)
