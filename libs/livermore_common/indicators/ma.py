"""Moving averages (SMA, EMA, Wilder's RMA) over float series, batch and incremental.

Batch forms take a list oldest first and return one value per input, NaN where undefined.
NaN inputs stand for missing values: leading ones are skipped (the average seeds from the first n
defined values), later ones leave the average where it was and yield the carried value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

NAN = math.nan


def sma(values: Sequence[float], n: int) -> list[float]:
    """Simple mean of each full window of `n` values: `len(values) - n + 1` results."""
    _check_period(n)
    if len(values) < n:
        return []
    window = sum(values[:n])
    out = [window / n]
    for i in range(n, len(values)):
        window += values[i] - values[i - n]
        out.append(window / n)
    return out


def ema(values: Sequence[float], n: int) -> list[float]:
    """Exponential average, alpha = 2/(n+1), seeded with the mean of the first n defined values."""
    state = Ema(period=n)
    return [_defined_or_nan(state.update(x)) for x in values]


def rma(values: Sequence[float], n: int) -> list[float]:
    """Wilder's average `(prev*(n-1) + x)/n`, seeded like `ema`."""
    state = Rma(period=n)
    return [_defined_or_nan(state.update(x)) for x in values]


class Ema(msgspec.Struct, kw_only=True):
    """Incremental EMA; `value` is None until `period` defined values have been seen."""

    period: int
    count: int = 0
    total: float = 0.0
    value: float | None = None

    def __post_init__(self) -> None:
        _check_period(self.period)

    def update(self, x: float) -> float | None:
        """Feed one value (NaN = missing: the average carries) and return the average."""
        value = self.value
        if x != x:  # NaN: a missing observation
            return value
        if value is not None:
            value += 2.0 / (self.period + 1) * (x - value)
            self.value = value
            return value
        return self._seed(x)

    def _seed(self, x: float) -> float | None:
        self.count += 1
        self.total += x
        if self.count == self.period:
            self.value = self.total / self.period
        return self.value


class Rma(Ema):
    """Incremental Wilder average (RMA), same seeding and missing-value rule as `Ema`."""

    def update(self, x: float) -> float | None:
        value = self.value
        if x != x:
            return value
        if value is not None:
            n = self.period
            value = (value * (n - 1) + x) / n
            self.value = value
            return value
        return self._seed(x)


def _defined_or_nan(value: float | None) -> float:
    return NAN if value is None else value


def _check_period(n: int) -> None:
    if n < 1:
        raise ValueError(f"period must be at least 1, got {n}")
