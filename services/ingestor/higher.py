"""Higher timeframes the venue does not stream, built from stored closed lower candles (pure).

A higher bucket is *due* when its last member has closed, when a later bucket of the same series
has started, or when the exchange clock has passed its end plus a grace (venues such as Coinbase
have no candle for an interval without trades, so counting members alone would wait forever).
The caller then reads the members from storage, repairs missing ones from REST, and combines them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from livermore_common.messages import Candle
from livermore_common.timeframes import bucket_start, interval_ms


class DueBucket(msgspec.Struct, frozen=True):
    symbol: str
    timeframe: str
    base_timeframe: str
    start: int

    @property
    def end(self) -> int:
        return self.start + interval_ms(self.timeframe)

    @property
    def members(self) -> int:
        return interval_ms(self.timeframe) // interval_ms(self.base_timeframe)


def base_timeframes(tracked: Iterable[str], native: Sequence[str]) -> dict[str, str]:
    """For each tracked non-native timeframe, the largest native timeframe that divides it."""
    plan: dict[str, str] = {}
    for tf in tracked:
        if tf in native:
            continue
        divisors = [n for n in native if interval_ms(tf) % interval_ms(n) == 0]
        if not divisors:
            raise ValueError(f"timeframe {tf} cannot be built from the streamed {list(native)}")
        plan[tf] = max(divisors, key=interval_ms)
    return plan


def combine(candles: Sequence[Candle], start: int) -> Candle | None:
    """OHLCV of ascending member candles: open first, high max, low min, close last, volume sum."""
    if not candles:
        return None
    return Candle(
        timestamp=start,
        open=candles[0].open,
        high=max(c.high for c in candles),
        low=min(c.low for c in candles),
        close=candles[-1].close,
        volume=sum(c.volume for c in candles),
    )


class HigherTimeframes:
    """Tracks the forming higher bucket of each (symbol, timeframe) and reports due ones."""

    def __init__(self, plan: dict[str, str], *, grace_ms: int) -> None:
        self._plan = plan
        self._grace = grace_ms
        self._targets: dict[str, list[str]] = {}
        for tf, base in plan.items():
            self._targets.setdefault(base, []).append(tf)
        self._pending: dict[tuple[str, str], int] = {}

    def needed_native(self) -> set[str]:
        return set(self._plan.values())

    def on_base_closed(self, symbol: str, base_tf: str, timestamp: int) -> list[DueBucket]:
        due: list[DueBucket] = []
        for tf in self._targets.get(base_tf, ()):
            start = bucket_start(timestamp, tf)
            previous = self._pending.get((symbol, tf))
            if previous is not None and previous < start:
                due.append(DueBucket(symbol, tf, base_tf, previous))
            if timestamp + interval_ms(base_tf) == start + interval_ms(tf):
                self._pending.pop((symbol, tf), None)
                due.append(DueBucket(symbol, tf, base_tf, start))
            elif previous is None or previous <= start:
                self._pending[(symbol, tf)] = start
        return due

    def on_clock(self, exchange_time: int) -> list[DueBucket]:
        due: list[DueBucket] = []
        for (symbol, tf), start in list(self._pending.items()):
            if start + interval_ms(tf) + self._grace <= exchange_time:
                del self._pending[(symbol, tf)]
                due.append(DueBucket(symbol, tf, self._plan[tf], start))
        return due

    def forget(self, symbols: Iterable[str]) -> None:
        gone = set(symbols)
        for key in [k for k in self._pending if k[0] in gone]:
            del self._pending[key]
