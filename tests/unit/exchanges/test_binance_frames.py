"""Binance close detection (k.x, new k.t) and hostile frames through the feed's handler."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from livermore_common.exchanges import (
    AdapterOptions,
    ClosedCandle,
    FeedDropped,
    FeedGap,
    Heartbeat,
)
from livermore_common.exchanges.binance.feed import BinanceFeed
from livermore_common.exchanges.binance.klines import KlineTracker
from livermore_common.exchanges.ratelimit import RateLimiter
from livermore_common.messages import Candle

T0 = 1_704_067_200_000
M = 60_000


def make_feed(symbols: list[str] | None = None, tfs: list[str] | None = None) -> BinanceFeed:
    return BinanceFeed(
        ws_url="ws://unused",
        symbols=symbols or ["BTCUSDT"],
        timeframes=tfs or ["1m"],
        options=AdapterOptions(),
        max_streams=1024,
        messages_per_second=5,
        connect_limiter=RateLimiter(rate=1, capacity=1),
    )


def kline(
    t: int,
    close: str,
    *,
    final: bool = False,
    event: int | None = None,
    symbol: str = "BTCUSDT",
    tf: str = "1m",
    step: int = M,
    **over: Any,
) -> bytes:
    k = {
        "t": t,
        "T": t + step - 1,
        "s": symbol,
        "i": tf,
        "f": 1,
        "L": 2,
        "o": "100",
        "c": close,
        "h": "110",
        "l": "90",
        "v": "12.5",
        "n": 3,
        "x": final,
        "q": "1250",
        "V": "6",
        "Q": "600",
        "B": "0",
    }
    k.update(over)
    data = {"e": "kline", "E": event if event is not None else t + 1_000, "s": symbol, "k": k}
    return msgspec.json.encode({"stream": f"{symbol.lower()}@kline_{tf}", "data": data})


def run(feed: BinanceFeed, *frames: bytes, clock: bool = False) -> list[Any]:
    """Events of `frames`; the clock heartbeats only when `clock` is set."""
    out: list[Any] = []
    for frame in frames:
        out += feed.handle_frame(frame) or []
    return out if clock else [e for e in out if not isinstance(e, Heartbeat)]


def test_kline_event_times_drive_a_clock_heartbeat_at_most_once_per_venue_second() -> None:
    feed = make_feed()
    events = run(
        feed,
        kline(T0, "1", event=T0 + 100),
        kline(T0, "1", event=T0 + 900),
        kline(T0, "1", event=T0 + 1_100),
        kline(T0, "1", final=True, event=T0 + M),
        clock=True,
    )
    beats = [e.exchange_time for e in events if isinstance(e, Heartbeat)]
    assert beats == [T0 + 100, T0 + 1_100, T0 + M]
    assert isinstance(events[-2], ClosedCandle)  # the close comes before the clock tick


def test_kline_closes_on_x_true() -> None:
    feed = make_feed()
    events = run(
        feed,
        kline(T0, "101"),
        kline(T0, "102", event=T0 + 30_000),
        kline(T0, "103", final=True, event=T0 + M),
    )
    assert events == [
        ClosedCandle(
            symbol="BTCUSDT",
            timeframe="1m",
            candle=Candle(timestamp=T0, open=100, high=110, low=90, close=103, volume=12.5),
            exchange_time=T0 + M,
        )
    ]


def test_duplicate_final_frame_closes_once() -> None:
    feed = make_feed()
    final = kline(T0, "103", final=True, event=T0 + M)
    assert len(run(feed, final, final, kline(T0, "104", event=T0 + M + 1))) == 1


def test_new_open_time_closes_previous_from_last_update_and_reports_gap() -> None:
    feed = make_feed()
    events = run(
        feed,
        kline(T0, "101"),
        kline(T0, "102", event=T0 + 50_000),
        kline(T0 + M, "105", event=T0 + M + 500),
    )
    assert [type(e) for e in events] == [ClosedCandle, FeedGap]
    assert events[0].candle.close == 102.0 and events[0].exchange_time == T0 + M + 500
    assert events[1] == FeedGap(reason="final 1m kline missed", symbols=("BTCUSDT",))
    assert (feed.stats.closed_candles, feed.stats.gaps) == (1, 1)


def test_skipped_buckets_after_a_final_frame_report_a_gap() -> None:
    feed = make_feed()
    events = run(feed, kline(T0, "101", final=True), kline(T0 + 3 * M, "105"))
    assert [type(e) for e in events] == [ClosedCandle, FeedGap]


def test_stale_and_older_updates_are_ignored() -> None:
    tracker = KlineTracker()
    c = lambda ts, close: Candle(timestamp=ts, open=1, high=9, low=1, close=close, volume=1)  # noqa: E731
    assert (
        tracker.on_kline(
            "X", "1m", c(T0 + M, 5), close_time=T0 + 2 * M - 1, final=False, event_time=10
        )
        == []
    )
    assert (
        tracker.on_kline("X", "1m", c(T0, 4), close_time=T0 + M - 1, final=True, event_time=11)
        == []
    )
    assert (
        tracker.on_kline(
            "X", "1m", c(T0 + M, 6), close_time=T0 + 2 * M - 1, final=False, event_time=20
        )
        == []
    )
    # An update older than the last one seen does not overwrite it.
    assert (
        tracker.on_kline(
            "X", "1m", c(T0 + M, 1), close_time=T0 + 2 * M - 1, final=False, event_time=15
        )
        == []
    )
    (closed,) = tracker.on_kline(
        "X", "1m", c(T0 + 2 * M, 7), close_time=T0 + 3 * M - 1, final=False, event_time=30
    )[:1]
    assert isinstance(closed, ClosedCandle) and closed.candle.close == 6


def test_streams_are_tracked_independently() -> None:
    feed = make_feed(["BTCUSDT", "ETHUSDT"], ["1m", "5m"])
    events = run(
        feed,
        kline(T0, "101", symbol="ETHUSDT"),
        kline(T0, "101", tf="5m", step=5 * M),
        kline(T0, "102", final=True),
        kline(T0 + M, "103", symbol="ETHUSDT"),
    )
    assert [(e.symbol, e.timeframe) for e in events if isinstance(e, ClosedCandle)] == [
        ("BTCUSDT", "1m"),
        ("ETHUSDT", "1m"),
    ]


def test_unsubscribed_streams_are_ignored_silently() -> None:
    feed = make_feed()
    assert run(feed, kline(T0, "1", final=True, symbol="DOGEUSDT")) == []
    assert feed.stats.dropped == 0


HOSTILE = [
    b"garbage",
    b'{"stream": "btcusdt@kline_1m", "data": {"e": "kline"}}',
    b'{"stream": "btcusdt@kline_1m", "data": []}',
    b'{"stream": 1, "data": 2}',
    b'{"result": null, "id": 999}',  # an answer to nothing we asked
    b'{"unexpected": true}',
    kline(T0, "NaN"),
    kline(T0, "-5"),
    kline(T0, "1e400"),
    kline(T0, "101", h="80"),  # high below low
    kline(T0, "101", T=T0 - 10),  # closes before it opens
    kline(T0, "101", x="yes"),
    kline(T0, "101", n="three"),
]


@pytest.mark.parametrize("frame", HOSTILE)
def test_hostile_frames_are_dropped_and_counted(frame: bytes) -> None:
    feed = make_feed()
    events = feed.handle_frame(frame)
    assert events is not None and [type(e) for e in events] == [FeedDropped]
    assert feed.stats.dropped == 1


def test_dropped_final_frame_is_repaired_by_the_next_bucket() -> None:
    feed = make_feed()
    events = run(feed, kline(T0, "101"), kline(T0, "NaN", final=True), kline(T0 + M, "103"))
    assert [type(e) for e in events] == [FeedDropped, ClosedCandle, FeedGap]
    assert events[1].candle.close == 101.0


async def test_update_symbols_bookkeeping_without_sockets() -> None:
    # With no socket open, removing everything only updates the wanted set.
    feed = make_feed(["BTCUSDT"])
    await feed.update_symbols([])
    assert run(feed, kline(T0, "1", final=True)) == []
    await feed.aclose()
