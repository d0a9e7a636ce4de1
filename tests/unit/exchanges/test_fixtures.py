"""Every recorded exchange message in ../shared/fixtures parses through our schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from livermore_common.exchanges import AdapterOptions, ClosedCandle, FeedDropped, Heartbeat
from livermore_common.exchanges.binance import parse as bparse
from livermore_common.exchanges.binance import schemas as b
from livermore_common.exchanges.binance.feed import BinanceFeed
from livermore_common.exchanges.coinbase import parse as cparse
from livermore_common.exchanges.coinbase import schemas as c
from livermore_common.exchanges.ratelimit import RateLimiter
from tests.conftest import FIXTURES

# file -> the struct it must decode into (requests/responses into the matching structs).
SCHEMAS: dict[str, Any] = {
    "coinbase/accounts.json": c.AccountsResponse,
    "coinbase/candles_snapshot.json": c.CandlesMessage,
    "coinbase/candles_update.json": c.CandlesMessage,
    "coinbase/heartbeats.json": c.HeartbeatsMessage,
    "coinbase/market_trades.json": c.MarketTradesMessage,
    "coinbase/market_trades_update.json": c.MarketTradesMessage,
    "coinbase/products.json": c.ProductsResponse,
    "coinbase/rest_candles.json": c.CandlesResponse,
    "coinbase/status.json": c.StatusMessage,
    "coinbase/subscribe_candles_request.json": c.SubscribeRequest,
    "coinbase/subscribe_heartbeats_request.json": c.SubscribeRequest,
    "coinbase/subscriptions.json": c.SubscriptionsMessage,
    "coinbase/ticker.json": c.TickerMessage,
    "coinbase/unsubscribe_request.json": c.SubscribeRequest,
    "coinbase/ws_error_authentication_failure.json": c.WsError,
    "coinbase/ws_error_too_many_l2_streams.json": c.WsError,
    "binance/account.json": b.AccountResponse,
    "binance/combined_kline.json": b.CombinedKline,
    "binance/combined_kline_lrcbtc.json": b.CombinedKline,
    "binance/exchange_info_docs_example.json": b.ExchangeInfoResponse,
    "binance/exchange_info_excerpt_2021_real.json": b.ExchangeInfoResponse,
    "binance/get_property_request.json": b.WsRequest,
    "binance/get_property_response.json": b.WsResponse,
    "binance/kline_closed_1s_unattributed.json": list[b.KlineEvent],
    "binance/kline_docs_example.json": b.KlineEvent,
    "binance/kline_open.json": b.KlineEvent,
    "binance/kline_open_5m_btcusdt_real.json": b.KlineEvent,
    "binance/list_subscriptions_request.json": b.WsRequest,
    "binance/list_subscriptions_response.json": b.WsResponse,
    "binance/rate_limits_docs.json": list[b.RateLimit],
    "binance/rest_error_418_ip_banned.json": b.RestError,
    "binance/rest_error_invalid_symbol.json": b.RestError,
    "binance/rest_klines.json": list[b.RestKline],
    "binance/server_shutdown_combined.json": b.Envelope,
    "binance/server_shutdown_raw.json": b.GenericEvent,
    "binance/set_property_request.json": b.WsRequest,
    "binance/set_property_response.json": b.WsResponse,
    "binance/subscribe_request.json": b.WsRequest,
    "binance/subscribe_response.json": b.WsResponse,
    "binance/ticker_24hr.json": b.Ticker24h,
    "binance/ticker_24hr_list.json": list[b.Ticker24h],
    "binance/unsubscribe_request.json": b.WsRequest,
    "binance/unsubscribe_response.json": b.WsResponse,
    "binance/ws_error_too_many_subscriptions.json": b.WsErrorResponse,
}
# Not wire messages: checked by the signing tests.
NOT_MESSAGES = {"binance/hmac_sha256_test_vector.json"}


def _all_fixture_files() -> list[str]:
    return sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.json"))


def test_every_fixture_file_has_a_schema(fixtures_dir: Path) -> None:
    files = set(_all_fixture_files())
    assert files, "no fixtures found"
    assert files - NOT_MESSAGES == set(SCHEMAS), "a fixture was added or removed: map it above"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_fixture_decodes(fixtures_dir: Path, name: str) -> None:
    data = (fixtures_dir / name).read_bytes()
    decoded = msgspec.json.decode(data, type=SCHEMAS[name])
    # Round trip through our structs keeps what we modelled.
    again = msgspec.json.decode(msgspec.json.encode(decoded), type=SCHEMAS[name])
    assert again == decoded


COINBASE_INBOUND = sorted(
    n for n, t in SCHEMAS.items() if n.startswith("coinbase/") and t is not c.SubscribeRequest
)


@pytest.mark.parametrize("name", COINBASE_INBOUND)
def test_coinbase_ws_and_rest_fixtures_parse_to_internal_types(
    fixtures_dir: Path, name: str
) -> None:
    data = (fixtures_dir / name).read_bytes()
    decoded = msgspec.json.decode(data, type=SCHEMAS[name])
    if isinstance(decoded, c.CandlesMessage):
        for ev in decoded.events:
            for candle in ev.candles:
                assert cparse.ws_candle(candle).high >= cparse.ws_candle(candle).low
    elif isinstance(decoded, c.MarketTradesMessage):
        for ev in decoded.events:
            assert all(cparse.trade(t).time_ms > 1_500_000_000_000 for t in ev.trades)
    elif isinstance(decoded, c.HeartbeatsMessage):
        assert cparse.parse_time_ms(decoded.events[0].current_time) == 1687552316121
    elif isinstance(decoded, c.CandlesResponse):
        assert [cparse.rest_candle(x).timestamp for x in decoded.candles] == [
            1712192400000,
            1712188800000,
        ]
    if hasattr(decoded, "timestamp"):
        assert cparse.parse_time_ms(decoded.timestamp) > 1_600_000_000_000
    # The feed's decoder accepts every WS message fixture too.
    if isinstance(decoded, (c.WsError, *c.WsMessage.__args__)):  # type: ignore[attr-defined]
        assert type(cparse.decode_ws(data)) is type(decoded)


def _binance_feed() -> BinanceFeed:
    return BinanceFeed(
        ws_url="ws://unused",
        symbols=["NKNUSDT", "LRCBTC", "BTCUSDT", "BNBBTC", "ETHUSDT"],
        timeframes=["1m", "5m", "1s"],
        options=AdapterOptions(),
        max_streams=1024,
        messages_per_second=5,
        connect_limiter=RateLimiter(rate=1, capacity=1),
    )


@pytest.mark.parametrize(
    "name", ["binance/combined_kline.json", "binance/combined_kline_lrcbtc.json"]
)
def test_binance_combined_frames_go_through_the_feed(fixtures_dir: Path, name: str) -> None:
    feed = _binance_feed()
    events = feed.handle_frame((fixtures_dir / name).read_bytes())
    assert [type(e) for e in events or []] == [Heartbeat]  # open kline: only the venue clock
    assert feed.stats.dropped == 0


def test_binance_closed_1s_klines_close(fixtures_dir: Path) -> None:
    feed = _binance_feed()
    events = msgspec.json.decode(
        (fixtures_dir / "binance/kline_closed_1s_unattributed.json").read_bytes(),
        type=list[b.KlineEvent],
    )
    closed = []
    for ev in events:
        frame = msgspec.json.encode({"stream": f"{ev.s.lower()}@kline_1s", "data": ev})
        closed += [e for e in feed.handle_frame(frame) or [] if not isinstance(e, Heartbeat)]
    assert [type(e) for e in closed] == [ClosedCandle, ClosedCandle]
    eth = closed[0]
    assert isinstance(eth, ClosedCandle) and eth.symbol == "ETHUSDT" and eth.candle.volume == 0.0
    assert eth.candle.timestamp == 1682244927000


def test_binance_server_shutdown_is_not_dropped(fixtures_dir: Path) -> None:
    feed = _binance_feed()
    for name in ("server_shutdown_combined.json", "server_shutdown_raw.json"):
        assert feed.handle_frame((fixtures_dir / "binance" / name).read_bytes()) is None
    assert feed.stats.dropped == 0


def test_binance_rest_fixtures_parse_to_internal_types(fixtures_dir: Path) -> None:
    rows = msgspec.json.decode(
        (fixtures_dir / "binance/rest_klines.json").read_bytes(), type=list[b.RestKline]
    )
    candle = bparse.rest_candle(rows[0])
    assert (candle.timestamp, candle.high, candle.volume) == (1499040000000, 0.8, 148976.11427815)
    kline = msgspec.json.decode(
        (fixtures_dir / "binance/kline_docs_example.json").read_bytes(), type=b.KlineEvent
    )
    assert bparse.kline_candle(kline.k).close == 0.002
    unknown = _binance_feed().handle_frame(b'{"stream":"x@depth","data":{"e":"depthUpdate"}}')
    assert unknown is not None and isinstance(unknown[0], FeedDropped)
