"""Aggregation of closed lower-timeframe candles into higher, UTC-aligned ones.

A higher candle takes open = first member's open, high = max, low = min, close = last member's
close, volume = sum, timestamp = the UTC-aligned bucket start.

When is a bucket complete? Two policies, chosen per exchange:

- strict (default): only when every member bucket is present. Right for exchanges that emit a
  candle for every bucket, trades or not (Binance klines): a missing member is lost data, and the
  bucket waits (or is abandoned and reported, for REST reconciliation) rather than being
  published wrong.
- sparse: also when a later bucket has started (a closed member candle of a later bucket arrived,
  which means the exchange clock has passed this bucket's end) or when the exchange clock passed
  the bucket end plus a grace. Right for Coinbase, where minutes without trades have no candle at
  all, so the members present *are* the whole bucket. The grace must exceed the lower timeframe's
  own close grace so that the last member is in before the clock closes the bucket.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from livermore_common.messages import Candle
from livermore_common.timeframes import interval_ms


def members_per_bucket(from_tf: str, to_tf: str) -> int:
    """How many `from_tf` buckets make one `to_tf` bucket; error if it does not divide evenly."""
    low, high = interval_ms(from_tf), interval_ms(to_tf)
    if high <= low or high % low:
        raise ValueError(f"cannot aggregate {from_tf} into {to_tf}")
    return high // low


def merge(bucket_start: int, members: Sequence[Candle]) -> Candle:
    """One higher candle from its members, oldest first."""
    return Candle(
        timestamp=bucket_start,
        open=members[0].open,
        high=max(c.high for c in members),
        low=min(c.low for c in members),
        close=members[-1].close,
        volume=sum(c.volume for c in members),
    )


def aggregate(
    candles: Iterable[Candle],
    from_tf: str,
    to_tf: str,
    *,
    sparse: bool = False,
    exchange_time: int | None = None,
    grace_ms: int = 0,
) -> list[Candle]:
    """Complete higher candles from closed lower ones (any order; a repeated timestamp keeps the
    last). Strict: buckets with every member. Sparse: also buckets followed by a later one, and the
    last bucket once `exchange_time` reaches its end plus `grace_ms`."""
    ratio = members_per_bucket(from_tf, to_tf)
    low_ms, high_ms = interval_ms(from_tf), interval_ms(to_tf)
    by_time: dict[int, Candle] = {}
    for candle in candles:
        _check_aligned(candle.timestamp, low_ms, from_tf)
        by_time[candle.timestamp] = candle
    groups: dict[int, list[Candle]] = {}
    for ts in sorted(by_time):
        groups.setdefault(ts - ts % high_ms, []).append(by_time[ts])
    starts = list(groups)
    out: list[Candle] = []
    for i, start in enumerate(starts):
        members = groups[start]
        complete = len(members) == ratio
        if sparse and not complete:
            later_started = i + 1 < len(starts)
            clock_passed = exchange_time is not None and exchange_time >= start + high_ms + grace_ms
            complete = later_started or clock_passed
        if complete:
            out.append(merge(start, members))
    return out


def _check_aligned(ts: int, step: int, timeframe: str) -> None:
    if ts % step:
        raise ValueError(f"timestamp {ts} is not aligned to {timeframe}")


class Aggregator(msgspec.Struct, kw_only=True):
    """Incremental aggregation: feed closed lower candles in time order, get completed higher ones.

    Serializable with msgspec (the open bucket is a few numbers). Duplicates and candles older than
    the newest one seen are ignored, so replays change nothing. In strict mode a bucket left
    incomplete when a later one starts is abandoned: its start is kept for `take_abandoned`.
    """

    from_tf: str
    to_tf: str
    sparse: bool = False
    grace_ms: int = 0
    start: int | None = None
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    close: float = 0.0
    volume: float = 0.0
    members: int = 0
    last_member: int | None = None
    abandoned: list[int] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        members_per_bucket(self.from_tf, self.to_tf)

    def add(self, candle: Candle) -> list[Candle]:
        """Take one closed lower candle; return the higher candles it completed (0, 1 or 2)."""
        ts = candle.timestamp
        _check_aligned(ts, interval_ms(self.from_tf), self.from_tf)
        if self.last_member is not None and ts <= self.last_member:
            return []
        self.last_member = ts
        high_ms = interval_ms(self.to_tf)
        bucket = ts - ts % high_ms
        out: list[Candle] = []
        if self.start is not None and self.start != bucket:
            self._close_open_bucket(out)
        if self.start is None:
            self.start, self.members = bucket, 1
            self.open, self.high, self.low = candle.open, candle.high, candle.low
            self.close, self.volume = candle.close, candle.volume
        else:
            self.high = max(self.high, candle.high)
            self.low = min(self.low, candle.low)
            self.close = candle.close
            self.volume += candle.volume
            self.members += 1
        if self.members == members_per_bucket(self.from_tf, self.to_tf):
            out.append(self._emit())
        return out

    def advance(self, exchange_time: int) -> list[Candle]:
        """Sparse mode: close the open bucket once the exchange clock passed its end plus grace."""
        if not self.sparse or self.start is None:
            return []
        if exchange_time < self.start + interval_ms(self.to_tf) + self.grace_ms:
            return []
        return [self._emit()]

    def take_abandoned(self) -> list[int]:
        """Starts of buckets abandoned incomplete (strict mode) since the last call."""
        taken, self.abandoned = self.abandoned, []
        return taken

    def _close_open_bucket(self, out: list[Candle]) -> None:
        if self.sparse:
            out.append(self._emit())
        else:
            assert self.start is not None
            self.abandoned.append(self.start)
            self.start = None

    def _emit(self) -> Candle:
        assert self.start is not None
        candle = Candle(
            timestamp=self.start,
            open=self.open,
            high=self.high,
            low=self.low,
            close=self.close,
            volume=self.volume,
        )
        self.start = None
        return candle
