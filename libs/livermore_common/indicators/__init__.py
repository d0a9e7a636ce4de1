"""Pure indicator library: moving averages, ATR, gap filling, MACD-V, stages, aggregation.

No I/O and no clock in here: every function is a deterministic function of its inputs, so the
indicator worker, the rebuild path and the tests compute identical values.
"""

from livermore_common.indicators.aggregate import Aggregator, aggregate
from livermore_common.indicators.gaps import FilledSeries, fill_gaps, synthetic_candle
from livermore_common.indicators.ma import Ema, Rma, ema, rma, sma
from livermore_common.indicators.macdv import (
    Liquidity,
    MacdVPoint,
    MacdVState,
    OutOfOrderCandleError,
    liquidity_of,
    macdv_series,
)
from livermore_common.indicators.stages import Stage, classify_stage
from livermore_common.indicators.volatility import atr, informative_atr, true_range, true_ranges

__all__ = [
    "Aggregator",
    "Ema",
    "FilledSeries",
    "Liquidity",
    "MacdVPoint",
    "MacdVState",
    "OutOfOrderCandleError",
    "Rma",
    "Stage",
    "aggregate",
    "atr",
    "classify_stage",
    "ema",
    "fill_gaps",
    "informative_atr",
    "liquidity_of",
    "macdv_series",
    "rma",
    "sma",
    "synthetic_candle",
    "true_range",
    "true_ranges",
]
