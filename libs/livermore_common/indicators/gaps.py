"""Gap filling: synthetic bars for the buckets a stored candle series is missing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from livermore_common.messages import Candle


class FilledSeries(NamedTuple):
    """Candles oldest first with a parallel flag list: True marks a synthetic (missing) bar."""

    candles: list[Candle]
    synthetic: list[bool]

    @property
    def synthetic_count(self) -> int:
        return sum(self.synthetic)


def synthetic_candle(timestamp: int, previous_close: float) -> Candle:
    """A bar standing for a missing bucket: O=H=L=C=previous close, volume 0."""
    p = previous_close
    return Candle(timestamp=timestamp, open=p, high=p, low=p, close=p, volume=0.0)


def fill_gaps(candles: Sequence[Candle], interval_ms: int) -> FilledSeries:
    """Insert a synthetic bar at every missing bucket between consecutive stored candles.

    Candles must be strictly increasing in time. A candle less than one interval after the previous
    one (misaligned data) is kept as it is; only whole missing intervals are filled.
    """
    if interval_ms <= 0:
        raise ValueError(f"interval_ms must be positive, got {interval_ms}")
    out: list[Candle] = []
    flags: list[bool] = []
    previous: Candle | None = None
    for candle in candles:
        if previous is not None:
            if candle.timestamp <= previous.timestamp:
                raise ValueError(
                    f"candles out of order: {candle.timestamp} after {previous.timestamp}"
                )
            ts = previous.timestamp + interval_ms
            while ts < candle.timestamp:
                out.append(synthetic_candle(ts, previous.close))
                flags.append(True)
                ts += interval_ms
        out.append(candle)
        flags.append(False)
        previous = candle
    return FilledSeries(out, flags)


def mark_synthetic(candles: Sequence[Candle], synthetic: Sequence[bool] | None) -> FilledSeries:
    """Pair candles with explicit synthetic flags (all observed when `synthetic` is None)."""
    flags = [False] * len(candles) if synthetic is None else list(synthetic)
    if len(flags) != len(candles):
        raise ValueError(f"{len(flags)} synthetic flags for {len(candles)} candles")
    return FilledSeries(list(candles), flags)
