"""Coinbase frames through the feed's handler (no socket): closes, gaps, hostile input."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from livermore_common.errors import AuthenticationError
from livermore_common.exchanges import (
    AdapterOptions,
    ClosedCandle,
    FeedDropped,
    FeedGap,
    Heartbeat,
)
from livermore_common.exchanges.coinbase.feed import CoinbaseFeed
from livermore_common.exchanges.ratelimit import RateLimiter

PRODUCTS = ["BTC-USD", "ETH-USD"]


def make_feed() -> CoinbaseFeed:
    return CoinbaseFeed(
        ws_url="ws://unused",
        products=PRODUCTS,
        timeframes=["1m", "5m"],
        options=AdapterOptions(trade_close_grace_ms=2_000),
        send_limiter=RateLimiter(rate=1, capacity=1),
        jwt_factory=lambda: None,
    )


class Frames:
    """Builds Coinbase messages with an increasing sequence_num."""

    def __init__(self) -> None:
        self.seq = -1
        self.trade_id = 1000

    def msg(self, channel: str, ts: str, events: list[dict[str, Any]], skip: int = 0) -> bytes:
        self.seq += 1 + skip
        return msgspec.json.encode(
            {
                "channel": channel,
                "client_id": "",
                "timestamp": ts,
                "sequence_num": self.seq,
                "events": events,
            }
        )

    def candle(
        self, ts: str, start: int, close: str, product: str = "BTC-USD", kind: str = "update"
    ) -> bytes:
        c = {
            "start": str(start),
            "high": "110",
            "low": "90",
            "open": "100",
            "close": close,
            "volume": "1.5",
            "product_id": product,
        }
        return self.msg("candles", ts, [{"type": kind, "candles": [c]}])

    def trades(
        self,
        ts: str,
        trades: list[tuple[str, str, str]],
        kind: str = "update",
        product: str = "BTC-USD",
        ids: list[int] | None = None,
    ) -> bytes:
        if ids is None:
            ids = list(range(self.trade_id, self.trade_id + len(trades)))
            self.trade_id += len(trades)
        rows = [
            {
                "trade_id": str(n),
                "product_id": product,
                "price": p,
                "size": s,
                "side": "BUY",
                "time": t,
            }
            for n, (t, p, s) in zip(ids, trades, strict=True)
        ]
        return self.msg("market_trades", ts, [{"type": kind, "trades": rows}])

    def heartbeat(self, current: str) -> bytes:
        return self.msg(
            "heartbeats",
            current.replace(" ", "T")[:26] + "Z",
            [{"current_time": current + " +0000 UTC m=+1.0", "heartbeat_counter": 7}],
        )


def run(feed: CoinbaseFeed, *frames: bytes) -> list[Any]:
    out: list[Any] = []
    for frame in frames:
        out += feed.handle_frame(frame) or []
    return out


def test_5m_candle_closes_on_later_start_with_last_values() -> None:
    feed, f = make_feed(), Frames()
    events = run(
        feed,
        f.candle("2024-01-01T00:00:01Z", 1704067200, "101", kind="snapshot"),
        f.candle("2024-01-01T00:04:59Z", 1704067200, "105"),
        f.candle("2024-01-01T00:05:01Z", 1704067500, "106"),
    )
    (closed,) = [e for e in events if isinstance(e, ClosedCandle)]
    assert (closed.symbol, closed.timeframe, closed.candle.timestamp, closed.candle.close) == (
        "BTC-USD",
        "5m",
        1704067200000,
        105.0,
    )
    assert closed.exchange_time == 1704067501000
    assert feed.stats.closed_candles == 1


def test_1m_from_trades_closes_on_heartbeat_clock() -> None:
    feed, f = make_feed(), Frames()
    events = run(
        feed,
        # Snapshot reaching back before the current minute proves it complete.
        f.trades(
            "2024-01-01T00:00:30Z",
            [("2023-12-31T23:59:50Z", "99", "1"), ("2024-01-01T00:00:10.5Z", "100", "2")],
            kind="snapshot",
        ),
        f.trades("2024-01-01T00:00:40Z", [("2024-01-01T00:00:40.123456789Z", "104", "0.5")]),
        f.heartbeat("2024-01-01 00:01:01.000000000"),
        f.heartbeat("2024-01-01 00:01:02.000000000"),
    )
    assert not [e for e in events if isinstance(e, ClosedCandle)]  # the clock shown: 00:01:01
    events = run(feed, f.heartbeat("2024-01-01 00:01:03.000000000"))
    (closed,) = [e for e in events if isinstance(e, ClosedCandle)]
    assert closed.exchange_time == 1704067262000  # closed by the 00:01:02 heartbeat's clock
    assert isinstance(events[-1], Heartbeat) and events[-1].exchange_time == 1704067263000
    c = closed.candle
    assert (closed.timeframe, c.timestamp, c.open, c.high, c.low, c.close, c.volume) == (
        "1m",
        1704067200000,
        100.0,
        104.0,
        100.0,
        104.0,
        2.5,
    )


def test_trades_sent_with_a_heartbeat_count_even_if_the_heartbeat_comes_first() -> None:
    feed, f = make_feed(), Frames()
    run(
        feed,
        f.trades("2024-01-01T00:00:30Z", [("2023-12-31T23:59:50Z", "99", "1")], kind="snapshot"),
        f.trades("2024-01-01T00:00:40Z", [("2024-01-01T00:00:40Z", "100", "1")]),
    )
    # One instant (00:01:05) of a coarse venue: heartbeat first, then the minute's last trade.
    events = run(
        feed,
        f.heartbeat("2024-01-01 00:01:05.000000000"),
        f.trades("2024-01-01T00:01:05Z", [("2024-01-01T00:00:59.9Z", "120", "2")]),
        f.heartbeat("2024-01-01 00:01:06.000000000"),
    )
    (closed,) = [e for e in events if isinstance(e, ClosedCandle)]
    assert (closed.candle.high, closed.candle.volume) == (120.0, 3.0)
    assert not [e for e in events if isinstance(e, FeedGap)]


def test_sequence_skip_yields_a_gap_for_every_product() -> None:
    feed, f = make_feed(), Frames()
    run(feed, f.heartbeat("2024-01-01 00:00:01.0"))
    f.seq += 3  # three messages lost
    events = run(feed, f.heartbeat("2024-01-01 00:00:02.0"))
    gaps = [e for e in events if isinstance(e, FeedGap)]
    assert gaps == [FeedGap(reason="sequence gap: 0 -> 4", symbols=tuple(PRODUCTS))]
    assert feed.stats.gaps == 1


HOSTILE = [
    b"not json at all",
    b"{",
    b"[]",
    b'{"channel": "candles", "timestamp": 5, "sequence_num": 0, "events": []}',
    b'{"channel": "level2", "timestamp": "2024-01-01T00:00:00Z", "sequence_num": 0, "events": []}',
    b'{"channel": "heartbeats", "timestamp": "yesterday", "sequence_num": 0, "events": []}',
    b'{"type": "error", "message": "too many L2 streams requested in a single session"}',
    "\u00ff\u0000".encode("utf-8", "surrogatepass"),
]


@pytest.mark.parametrize("frame", HOSTILE)
def test_hostile_frames_are_dropped_and_counted(frame: bytes) -> None:
    feed = make_feed()
    events = feed.handle_frame(frame)
    assert events is not None and [type(e) for e in events] == [FeedDropped]
    assert feed.stats.dropped == 1


@pytest.mark.parametrize("price", ["NaN", "-1", "inf", "1e999", "abc"])
def test_bad_candle_values_are_dropped(price: str) -> None:
    feed, f = make_feed(), Frames()
    events = run(feed, f.candle("2024-01-01T00:00:01Z", 1704067200, price))
    assert [type(e) for e in events] == [FeedDropped]


def test_high_below_low_is_dropped() -> None:
    feed, f = make_feed(), Frames()
    frame = f.candle("2024-01-01T00:00:01Z", 1704067200, "100").replace(
        b'"high":"110"', b'"high":"80"'
    )
    assert [type(e) for e in run(feed, frame)] == [FeedDropped]


def test_bad_trade_is_dropped_and_repaired_via_gap() -> None:
    feed, f = make_feed(), Frames()
    events = run(feed, f.trades("2024-01-01T00:00:30Z", [("2024-01-01T00:00:29Z", "NaN", "1")]))
    assert [type(e) for e in events] == [FeedDropped, FeedGap]
    assert events[1].symbols == ("BTC-USD",)


def test_products_not_subscribed_are_ignored() -> None:
    feed, f = make_feed(), Frames()
    events = run(
        feed,
        f.candle("2024-01-01T00:00:01Z", 1704067200, "1", product="DOGE-USD"),
        f.candle("2024-01-01T00:05:01Z", 1704067500, "1", product="DOGE-USD"),
    )
    assert events == [] and feed.stats.dropped == 0


async def test_authentication_failure_ends_the_feed() -> None:
    feed = make_feed()
    assert feed.handle_frame(b'{"type": "error", "message": "authentication failure"}') is None
    with pytest.raises(AuthenticationError):
        async for _ in feed:
            pass
    await feed.aclose()


def test_trades_repeated_after_the_snapshot_count_once() -> None:
    feed, f = make_feed(), Frames()
    first, second = ("2024-01-01T00:00:10Z", "100", "1"), ("2024-01-01T00:00:20Z", "101", "2")
    events = run(
        feed,
        f.trades(
            "2024-01-01T00:00:30Z",
            [("2023-12-31T23:59:00Z", "99", "5"), first, second],
            kind="snapshot",
            ids=[1, 2, 3],
        ),
        f.trades(
            "2024-01-01T00:00:31Z",
            [first, second, ("2024-01-01T00:00:31Z", "102", "4")],
            ids=[2, 3, 4],
        ),
        f.heartbeat("2024-01-01 00:01:03.000000000"),
        f.heartbeat("2024-01-01 00:01:04.000000000"),
    )
    (closed,) = [e for e in events if isinstance(e, ClosedCandle)]
    assert closed.candle.volume == 7.0  # 1 + 2 + 4, the repeats of ids 2 and 3 ignored


def test_snapshot_trades_in_the_same_millisecond_all_count() -> None:
    """Coinbase lists a snapshot newest first; two trades of one millisecond must both count
    (sorted by time alone, the older one came second and looked like a repeat of a seen id)."""
    feed, f = make_feed(), Frames()
    events = run(
        feed,
        f.trades(
            "2024-01-01T00:00:30Z",
            [
                ("2024-01-01T00:00:10.5008Z", "101", "2"),  # newest first, as the venue sends
                ("2024-01-01T00:00:10.5004Z", "100", "1"),  # same millisecond, the open
                ("2023-12-31T23:59:50Z", "99", "5"),
            ],
            kind="snapshot",
            ids=[12, 11, 10],
        ),
        f.heartbeat("2024-01-01 00:01:03.000000000"),
        f.heartbeat("2024-01-01 00:01:04.000000000"),
    )
    (closed,) = [e for e in events if isinstance(e, ClosedCandle)]
    c = closed.candle
    assert (c.open, c.close, c.volume) == (100.0, 101.0, 3.0)
