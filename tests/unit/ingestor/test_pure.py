"""Pure parts of the ingestor: symbol assignment, backfill windows, higher-timeframe planning."""

import pytest

from livermore_common.messages import Candle
from services.ingestor.assignment import assign, owner_of
from services.ingestor.backfill import backfill_window
from services.ingestor.higher import DueBucket, HigherTimeframes, base_timeframes, combine

MIN = 60_000
SYMBOLS = [f"SYM{i:03d}" for i in range(300)]


def test_assignment_partitions_every_symbol_exactly_once() -> None:
    members = ["a", "b", "c"]
    parts = [assign(SYMBOLS, members, m) for m in members]
    flat = [s for p in parts for s in p]
    assert sorted(flat) == sorted(SYMBOLS)
    assert all(len(p) > 50 for p in parts)  # roughly balanced


def test_assignment_moves_only_the_leavers_symbols() -> None:
    before = {s: owner_of(s, ["a", "b", "c"]) for s in SYMBOLS}
    after = {s: owner_of(s, ["a", "b"]) for s in SYMBOLS}
    moved = [s for s in SYMBOLS if before[s] != after[s]]
    assert moved and all(before[s] == "c" for s in moved)


def test_owner_of_without_members_is_an_error() -> None:
    with pytest.raises(ValueError):
        owner_of("X", [])


def test_backfill_window_excludes_the_forming_bucket() -> None:
    now = 10 * MIN + 30_000
    assert backfill_window(latest_stored=None, now_ms=now, timeframe="1m", history=3) == (
        7 * MIN,
        10 * MIN,
    )
    assert backfill_window(latest_stored=8 * MIN, now_ms=now, timeframe="1m", history=3) == (
        9 * MIN,
        10 * MIN,
    )
    assert backfill_window(latest_stored=9 * MIN, now_ms=now, timeframe="1m", history=3) is None


def test_base_timeframes_choose_the_largest_native_divisor() -> None:
    plan = base_timeframes(["1m", "5m", "15m", "1h", "4h", "1d"], ["1m", "5m"])
    assert plan == {"15m": "5m", "1h": "5m", "4h": "5m", "1d": "5m"}
    with pytest.raises(ValueError):
        base_timeframes(["1m"], ["5m"])


def test_higher_bucket_due_when_last_member_closes() -> None:
    h = HigherTimeframes({"15m": "5m"}, grace_ms=1000)
    start = 1704067200000
    assert h.on_base_closed("X", "5m", start) == []
    assert h.on_base_closed("X", "5m", start + 5 * MIN) == []
    assert h.on_base_closed("X", "5m", start + 10 * MIN) == [DueBucket("X", "15m", "5m", start)]
    assert h.on_clock(start + 60 * MIN) == []


def test_higher_bucket_due_when_a_later_bucket_starts_or_the_clock_passes() -> None:
    h = HigherTimeframes({"15m": "5m"}, grace_ms=1000)
    start = 1704067200000
    h.on_base_closed("X", "5m", start)  # the other two members never come (no trades)
    assert h.on_clock(start + 15 * MIN) == []  # within grace
    assert h.on_clock(start + 15 * MIN + 1000) == [DueBucket("X", "15m", "5m", start)]
    h.on_base_closed("Y", "5m", start)
    assert h.on_base_closed("Y", "5m", start + 15 * MIN) == [DueBucket("Y", "15m", "5m", start)]


def test_combine_matches_the_domain_aggregation_example() -> None:
    start = 1704067200000
    bars = [(100, 105, 99, 103, 1000), (103, 108, 102, 106, 1100), (106, 107, 104, 105, 900)]
    candles = [
        Candle(timestamp=start + i * 5 * MIN, open=o, high=h, low=lo, close=c, volume=v)
        for i, (o, h, lo, c, v) in enumerate(bars)
    ]
    assert combine(candles, start) == Candle(
        timestamp=start, open=100, high=108, low=99, close=105, volume=3000
    )
    assert combine([], start) is None
