"""Coinbase close detection: 5m from the candles channel, 1m from trades on the venue clock."""

from __future__ import annotations

from livermore_common.exchanges import ClosedCandle, FeedGap
from livermore_common.exchanges.coinbase.candles import (
    CandleChannelTracker,
    SeenTrades,
    TradeCandleBuilder,
)
from livermore_common.exchanges.validation import volume_units as u
from livermore_common.messages import Candle

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a minute and 5-minute boundary
M = 60_000


def candle(ts: int, close: float, volume: float = 1.0) -> Candle:
    return Candle(
        timestamp=ts,
        open=100.0,
        high=max(100.0, close),
        low=min(100.0, close),
        close=close,
        volume=volume,
    )


# ---- 5m: candles channel ---------------------------------------------------------------------


def test_bucket_closes_when_a_later_start_arrives_with_its_last_update() -> None:
    tracker = CandleChannelTracker()
    assert tracker.update("BTC-USD", candle(T0, 101), T0 + 1) == []
    assert tracker.update("BTC-USD", candle(T0, 102, volume=5), T0 + 2) == []
    assert tracker.update("ETH-USD", candle(T0 + 5 * M, 50), T0 + 3) == []  # independent
    assert tracker.update("BTC-USD", candle(T0 + 5 * M, 103), T0 + 5 * M + 1) == [
        ClosedCandle(
            symbol="BTC-USD",
            timeframe="5m",
            candle=candle(T0, 102, volume=5),
            exchange_time=T0 + 5 * M + 1,
        )
    ]


def test_stale_resend_of_an_older_bucket_is_ignored() -> None:
    tracker = CandleChannelTracker()
    tracker.update("BTC-USD", candle(T0, 101), 0)
    tracker.update("BTC-USD", candle(T0 + 5 * M, 103), 0)
    assert tracker.update("BTC-USD", candle(T0, 99), 0) == []
    # ... and it did not replace the forming bucket.
    (closed,) = tracker.update("BTC-USD", candle(T0 + 10 * M, 104), 0)
    assert isinstance(closed, ClosedCandle) and closed.candle == candle(T0 + 5 * M, 103)


def test_first_update_after_the_subscription_bucket_reports_missed_closes() -> None:
    tracker = CandleChannelTracker()
    tracker.expect("BTC-USD", T0 + 4 * M)  # requested in bucket T0
    tracker.expect("ETH-USD", T0 + 4 * M)
    assert tracker.update("ETH-USD", candle(T0, 1), T0 + 4 * M) == []  # same bucket: fine
    assert tracker.update("BTC-USD", candle(T0 + 5 * M, 1), T0 + 5 * M) == [
        FeedGap(reason="5m buckets closed before the subscription began", symbols=("BTC-USD",))
    ]


# ---- 1m: trades --------------------------------------------------------------------------------


def proven_builder(grace: int = 2_000) -> TradeCandleBuilder:
    """A builder watching BTC-USD from T0 whose snapshot proved minute T0 complete."""
    builder = TradeCandleBuilder(grace_ms=grace)
    builder.watch("BTC-USD", T0 + 1_000)
    builder.prove_complete_after("BTC-USD", T0 - 5_000)
    return builder


def closed(events: list) -> list[ClosedCandle]:
    return [e for e in events if isinstance(e, ClosedCandle)]


def test_ohlcv_from_trades() -> None:
    b = proven_builder()
    for t, price, size in [
        (1_000, 100.0, "1"),
        (2_000, 105.0, "0.5"),
        (3_000, 98.0, "2.0"),
        (4_000, 101.0, "0.25"),
    ]:
        assert b.add_trade("BTC-USD", T0 + t, price, u(size)) == []
    events = b.advance(T0 + M + 2_000)
    assert closed(events) == [
        ClosedCandle(
            symbol="BTC-USD",
            timeframe="1m",
            candle=Candle(timestamp=T0, open=100.0, high=105.0, low=98.0, close=101.0, volume=3.75),
            exchange_time=T0 + M + 2_000,
        )
    ]


def test_minute_closes_on_the_venue_clock_plus_grace_without_a_next_trade() -> None:
    b = proven_builder(grace=2_000)
    b.add_trade("BTC-USD", T0 + 30_000, 100.0, u("1.0"))
    assert b.advance(T0 + M) == []  # minute over, grace not yet
    assert b.advance(T0 + M + 1_999) == []
    assert [c.candle.timestamp for c in closed(b.advance(T0 + M + 2_000))] == [T0]
    assert b.advance(T0 + 10 * M) == []  # closed once only


def test_trade_within_grace_still_counts_for_its_minute() -> None:
    b = proven_builder()
    b.add_trade("BTC-USD", T0 + 59_000, 100.0, u("1.0"))
    b.advance(T0 + M + 500)  # clock moved into the next minute, within grace
    b.add_trade("BTC-USD", T0 + 59_900, 110.0, u("1.0"))  # late delivery of a previous-minute trade
    (c,) = closed(b.advance(T0 + M + 2_000))
    assert (c.candle.high, c.candle.volume) == (110.0, 2.0)


def test_minutes_without_trades_produce_no_candle() -> None:
    b = proven_builder()
    b.add_trade("BTC-USD", T0 + 1_000, 100.0, u("1.0"))
    b.add_trade("BTC-USD", T0 + 3 * M + 1_000, 101.0, u("1.0"))
    stamps = [c.candle.timestamp for c in closed(b.advance(T0 + 10 * M))]
    assert stamps == [T0, T0 + 3 * M]


def test_trade_for_a_closed_minute_reports_a_gap_once() -> None:
    b = proven_builder()
    b.add_trade("BTC-USD", T0 + 1_000, 100.0, u("1.0"))
    b.advance(T0 + M + 2_000)
    assert b.add_trade("BTC-USD", T0 + 5_000, 100.0, u("1.0")) == [
        FeedGap(reason="late trade for a closed minute", symbols=("BTC-USD",))
    ]
    assert b.add_trade("BTC-USD", T0 + 6_000, 100.0, u("1.0")) == []


def test_unproven_first_minute_yields_a_gap_instead_of_a_partial_candle() -> None:
    b = TradeCandleBuilder(grace_ms=2_000)
    b.watch("BTC-USD", T0 + 30_000)  # subscribed mid-minute, no snapshot proof
    b.add_trade("BTC-USD", T0 + 31_000, 100.0, u("1.0"))
    b.add_trade("BTC-USD", T0 + M + 1_000, 101.0, u("1.0"))
    events = b.advance(T0 + 2 * M + 2_000)
    assert events[0] == FeedGap(
        reason="first minute after subscribing may be incomplete", symbols=("BTC-USD",)
    )
    assert [c.candle.timestamp for c in closed(events)] == [T0 + M]


def test_snapshot_that_reaches_back_proves_the_first_minute() -> None:
    b = TradeCandleBuilder()
    b.watch("BTC-USD", T0 + 30_000)
    b.prove_complete_after("BTC-USD", T0 + 10_000)  # oldest trade inside the minute: no proof
    b.add_trade("BTC-USD", T0 + 20_000, 100.0, u("1.0"))
    assert isinstance(b.advance(T0 + M + 2_000)[0], FeedGap)

    b = TradeCandleBuilder()
    b.watch("BTC-USD", T0 + 30_000)
    b.prove_complete_after("BTC-USD", T0 - 1)  # reaches into the previous minute: proof
    b.add_trade("BTC-USD", T0 + 20_000, 100.0, u("1.0"))
    assert [c.candle.timestamp for c in closed(b.advance(T0 + M + 2_000))] == [T0]


def test_invalidate_distrusts_open_minutes() -> None:
    b = proven_builder()
    b.add_trade("BTC-USD", T0 + 1_000, 100.0, u("1.0"))
    b.invalidate(T0 + 20_000)  # a sequence gap: trades may be missing
    b.add_trade("BTC-USD", T0 + 30_000, 100.0, u("1.0"))
    events = b.advance(T0 + M + 2_000)
    assert closed(events) == []
    assert [type(e) for e in events] == [FeedGap]


def test_unwatched_products_are_ignored_and_forget_stops_building() -> None:
    b = proven_builder()
    assert b.add_trade("ETH-USD", T0 + 1_000, 10.0, u("1.0")) == []
    b.add_trade("BTC-USD", T0 + 1_000, 100.0, u("1.0"))
    b.forget("BTC-USD")
    assert b.advance(T0 + 5 * M) == []
    assert b.watched == frozenset()


def test_volume_is_the_exact_decimal_sum() -> None:
    b = proven_builder()
    for i in range(10):
        b.add_trade("BTC-USD", T0 + i, 100.0, u("0.1"))
    (c,) = closed(b.advance(T0 + M + 2_000))
    assert c.candle.volume == 1.0  # a float sum of ten 0.1 would be 0.9999999999999999


def test_seen_trades_by_increasing_id_or_by_memory() -> None:
    seen = SeenTrades(memory=2)
    assert [seen.fresh("A", i) for i in ["5", "6", "6", "4", "7"]] == [
        True,
        True,
        False,
        False,
        True,
    ]
    assert seen.fresh("B", "5")  # per product
    assert [seen.fresh("A", i) for i in ["x", "y", "x", "z", "x"]] == [
        True,
        True,
        False,
        True,
        True,
    ]
    seen.forget("A")
    assert seen.fresh("A", "1")


def test_watch_after_the_requested_minute_reports_missed_minutes() -> None:
    b = TradeCandleBuilder()
    assert b.watch("BTC-USD", T0 + 30_000, since_ms=T0 + 10_000) == []
    assert b.watch("ETH-USD", T0 + M + 5_000, since_ms=T0 + 50_000) == [
        FeedGap(reason="minutes closed before the subscription began", symbols=("ETH-USD",))
    ]
    assert b.watch("ETH-USD", T0 + 5 * M, since_ms=0) == []  # already watched
