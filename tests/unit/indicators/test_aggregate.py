"""Aggregation of closed lower candles: the DOMAIN.md §5 example, strict and sparse policies."""

from __future__ import annotations

import msgspec
import pytest

from livermore_common.indicators.aggregate import Aggregator, aggregate, members_per_bucket
from livermore_common.messages import Candle
from tests.unit.indicators.vectors import random_gappy

START = 1_704_067_200_000
FIVE = 300_000
FIFTEEN = 900_000
OHLCV = [
    (100, 105, 99, 103, 1000),
    (103, 108, 102, 106, 1100),
    (106, 107, 104, 105, 900),
    (105, 110, 104, 109, 1200),
    (109, 112, 108, 111, 1300),
    (111, 113, 110, 112, 1400),
]
BARS = [
    Candle(timestamp=START + i * FIVE, open=o, high=h, low=lo, close=c, volume=v)
    for i, (o, h, lo, c, v) in enumerate(OHLCV)
]
FIRST = Candle(timestamp=START, open=100, high=108, low=99, close=105, volume=3000)
SECOND = Candle(timestamp=START + FIFTEEN, open=105, high=113, low=104, close=112, volume=3900)


def test_domain_example() -> None:
    assert aggregate(BARS, "5m", "15m") == [FIRST, SECOND]


def test_domain_example_four_bars_gives_one_candle() -> None:
    assert aggregate(BARS[:4], "5m", "15m") == [FIRST]
    assert aggregate(BARS[:4], "5m", "15m", sparse=True) == [FIRST]


def test_batch_ignores_order_and_duplicates() -> None:
    shuffled = [BARS[5], BARS[0], BARS[3], BARS[1], BARS[1], BARS[4], BARS[2]]
    assert aggregate(shuffled, "5m", "15m") == [FIRST, SECOND]


def test_strict_batch_drops_incomplete_buckets() -> None:
    assert aggregate([BARS[0], BARS[2], *BARS[3:]], "5m", "15m") == [SECOND]


def test_sparse_batch_completes_a_bucket_once_a_later_one_started() -> None:
    partial = aggregate([BARS[0], BARS[2], BARS[3]], "5m", "15m", sparse=True)
    assert partial == [Candle(timestamp=START, open=100, high=107, low=99, close=105, volume=1900)]


def test_sparse_batch_completes_the_last_bucket_on_the_exchange_clock() -> None:
    bars = BARS[3:5]
    end = START + 2 * FIFTEEN
    assert aggregate(bars, "5m", "15m", sparse=True, exchange_time=end - 1) == []
    assert aggregate(bars, "5m", "15m", sparse=True, exchange_time=end, grace_ms=5) == []
    expected = Candle(
        timestamp=START + FIFTEEN, open=105, high=112, low=104, close=111, volume=2500
    )
    assert aggregate(bars, "5m", "15m", sparse=True, exchange_time=end + 5, grace_ms=5) == [
        expected
    ]


def test_incremental_emits_each_bucket_when_its_last_member_arrives() -> None:
    agg = Aggregator(from_tf="5m", to_tf="15m")
    emitted = [agg.add(bar) for bar in BARS]
    assert emitted == [[], [], [FIRST], [], [], [SECOND]]


def test_incremental_ignores_replays() -> None:
    agg = Aggregator(from_tf="5m", to_tf="15m")
    out = []
    for bar in [BARS[0], BARS[1], BARS[1], BARS[0], BARS[2], BARS[2], BARS[1]]:
        out.extend(agg.add(bar))
    assert out == [FIRST]


def test_strict_incremental_abandons_incomplete_bucket() -> None:
    agg = Aggregator(from_tf="5m", to_tf="15m")
    out = [c for bar in [BARS[0], BARS[2], *BARS[3:]] for c in agg.add(bar)]
    assert out == [SECOND]
    assert agg.take_abandoned() == [START]
    assert agg.take_abandoned() == []
    assert agg.advance(START + 10 * FIFTEEN) == []


def test_sparse_incremental_later_bucket_closes_earlier_one() -> None:
    agg = Aggregator(from_tf="5m", to_tf="15m", sparse=True)
    assert agg.add(BARS[0]) == []
    assert agg.add(BARS[2]) == []
    partial = Candle(timestamp=START, open=100, high=107, low=99, close=105, volume=1900)
    assert agg.add(BARS[4]) == [partial]


def test_sparse_incremental_closes_on_exchange_clock_with_grace() -> None:
    agg = Aggregator(from_tf="5m", to_tf="15m", sparse=True, grace_ms=2_000)
    agg.add(BARS[0])
    agg.add(BARS[1])
    end = START + FIFTEEN
    assert agg.advance(end) == []
    assert agg.advance(end + 1_999) == []
    [closed] = agg.advance(end + 2_000)
    assert closed == Candle(timestamp=START, open=100, high=108, low=99, close=106, volume=2100)
    assert agg.advance(end + 10_000) == []
    # A late member of the bucket already closed is ignored rather than re-opening it.
    assert agg.add(BARS[1]) == []


def test_state_round_trip_mid_bucket() -> None:
    agg = Aggregator(from_tf="5m", to_tf="15m")
    agg.add(BARS[0])
    restored = msgspec.msgpack.decode(msgspec.msgpack.encode(agg), type=Aggregator)
    assert [restored.add(b) for b in BARS[1:3]] == [[], [FIRST]]


@pytest.mark.parametrize(("low", "high"), [("15m", "5m"), ("5m", "5m"), ("4h", "6h")])
def test_invalid_pairs_are_refused(low: str, high: str) -> None:
    with pytest.raises(ValueError):
        members_per_bucket(low, high)
    with pytest.raises(ValueError):
        Aggregator(from_tf=low, to_tf=high)


def test_misaligned_candle_is_refused() -> None:
    bad = Candle(timestamp=START + 1, open=1, high=1, low=1, close=1, volume=1)
    with pytest.raises(ValueError):
        aggregate([bad], "5m", "15m")
    with pytest.raises(ValueError):
        Aggregator(from_tf="5m", to_tf="15m").add(bad)


def test_daily_buckets_align_to_utc_midnight() -> None:
    hours = [
        Candle(
            timestamp=START + 4 * 3_600_000 * i, open=i, high=i + 1, low=i - 1, close=i, volume=1
        )
        for i in range(7)
    ]
    [day] = aggregate(hours, "4h", "1d")
    assert day.timestamp == START and day.close == 5 and day.volume == 6


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("seed", [11, 12])
def test_incremental_equals_batch_on_random_gappy_minutes(sparse: bool, seed: int) -> None:
    minutes = random_gappy(seed, count=600, gap_chance=0.01)
    agg = Aggregator(from_tf="1m", to_tf="15m", sparse=sparse)
    incremental = [c for m in minutes for c in agg.add(m)]
    end = minutes[-1].timestamp + 60_000
    incremental += agg.advance(end + FIFTEEN)
    batch = aggregate(minutes, "1m", "15m", sparse=sparse, exchange_time=end + FIFTEEN)
    assert incremental == batch
    assert len(batch) > 10
