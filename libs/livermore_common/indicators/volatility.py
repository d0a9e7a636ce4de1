"""True range and ATR, including the informative ATR of gap-filled (thin) series.

Synthetic bars are missing observations: their true range is undefined (NaN) and the ATR carries
forward across them; it seeds from the mean of the first `period` observed true ranges.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from livermore_common.indicators.gaps import FilledSeries, fill_gaps, mark_synthetic
from livermore_common.indicators.ma import rma
from livermore_common.messages import Candle

ATR_PERIOD = 26


def true_range(high: float, low: float, previous_close: float | None) -> float:
    """`max(H-L, |H-Cprev|, |L-Cprev|)`; just `H-L` when there is no previous close."""
    if previous_close is None:
        return high - low
    return max(high - low, abs(high - previous_close), abs(low - previous_close))


def true_ranges(candles: Sequence[Candle], synthetic: Sequence[bool] | None = None) -> list[float]:
    """True range per bar, NaN for synthetic bars; the first bar uses H-L."""
    series = mark_synthetic(candles, synthetic)
    out: list[float] = []
    previous_close: float | None = None
    for candle, is_synthetic in zip(series.candles, series.synthetic, strict=True):
        if is_synthetic:
            out.append(math.nan)
        else:
            out.append(true_range(candle.high, candle.low, previous_close))
        previous_close = candle.close
    return out


def atr(
    candles: Sequence[Candle],
    period: int = ATR_PERIOD,
    synthetic: Sequence[bool] | None = None,
) -> list[float]:
    """Wilder ATR per bar (NaN until seeded), carried forward over synthetic bars."""
    return rma(true_ranges(candles, synthetic), period)


def informative_atr(
    candles: Sequence[Candle], interval_ms: int, period: int = ATR_PERIOD
) -> tuple[FilledSeries, list[float]]:
    """Gap-fill stored candles, then compute the ATR over the observed bars only."""
    filled = fill_gaps(candles, interval_ms)
    return filled, atr(filled.candles, period, filled.synthetic)


def observed_count(synthetic: Sequence[bool]) -> int:
    """Number of observed (non-synthetic) bars: the `n_eff` of the ATR."""
    return len(synthetic) - sum(synthetic)
