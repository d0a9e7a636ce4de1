"""Frames the simulator renders have the keys and value types of the recorded exchange messages
in ../shared/fixtures (read in place), one test per fixture file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.sim.binance import _kline_row
from services.sim.binance_frames import combined, kline_event, server_shutdown_event
from services.sim.binance_info import RATE_LIMITS, account_body, exchange_info, ticker_24h
from services.sim.binance_ws import Connection, handle_command
from services.sim.coinbase import _candle_row
from services.sim.coinbase_frames import Frames, candle_dict, trade_dict
from services.sim.coinbase_info import accounts_body, product_body
from services.sim.coinbase_ws import _error as coinbase_error
from services.sim.config import SimConfig
from services.sim.market import MINUTE_MS, Market
from tests.unit.sim.shapes import mismatches

T0 = 1_767_225_600_000
BN = Market("binance", SimConfig(symbols=5))
CB = Market("coinbase", SimConfig(symbols=5))


def _kline(final: bool = False) -> Any:
    spec = BN.symbols[0]
    bar = BN.minute(spec, T0 // MINUTE_MS).bar
    assert bar is not None
    return json.loads(kline_event(spec, "1m", MINUTE_MS, T0, bar, final, T0 + 61_000))


def _combined_kline() -> Any:
    return {"stream": "btcusdt@kline_1m", "data": _kline()}


def _command(text: str, max_streams: int = 1024) -> Any:
    conn = Connection.__new__(Connection)
    conn.streams, conn.combined = {"btcusdt@kline_1m": None}, True
    return json.loads(handle_command(conn, text, max_streams) or "null")


def _cb_message(channel: str, events: list[Any]) -> Any:
    return json.loads(Frames().message(channel, T0 / 1000, events))


def _cb_candle() -> dict[str, str]:
    spec = CB.symbols[0]
    bar = CB.minute(spec, T0 // MINUTE_MS).bar
    assert bar is not None
    return candle_dict(spec, T0, bar)


def _cb_trades() -> list[dict[str, str]]:
    spec = CB.symbols[0]
    data = CB.minute(spec, T0 // MINUTE_MS)
    return [trade_dict(spec, t, data.minute, i) for i, t in enumerate(data.slices[0].trades)]


def _heartbeat() -> Any:
    return json.loads(Frames().heartbeat(T0 / 1000, T0 / 1000, 0.0))


BUILDERS: dict[str, tuple[Callable[[], Any], frozenset[str]]] = {
    "binance/kline_docs_example.json": (_kline, frozenset()),
    "binance/kline_open.json": (_kline, frozenset()),
    "binance/kline_open_5m_btcusdt_real.json": (_kline, frozenset()),
    "binance/combined_kline.json": (_combined_kline, frozenset()),
    "binance/combined_kline_lrcbtc.json": (_combined_kline, frozenset()),
    "binance/server_shutdown_raw.json": (
        lambda: json.loads(server_shutdown_event(T0)),
        frozenset(),
    ),
    "binance/server_shutdown_combined.json": (
        lambda: json.loads(combined("!serverShutdown", server_shutdown_event(T0))),
        frozenset(),
    ),
    "binance/subscribe_response.json": (
        lambda: _command('{"method":"SUBSCRIBE","params":["ethusdt@kline_1m"],"id":1}'),
        frozenset(),
    ),
    "binance/unsubscribe_response.json": (
        lambda: _command('{"method":"UNSUBSCRIBE","params":["btcusdt@kline_1m"],"id":312}'),
        frozenset(),
    ),
    "binance/list_subscriptions_response.json": (
        lambda: _command('{"method":"LIST_SUBSCRIPTIONS","id":3}'),
        frozenset(),
    ),
    "binance/set_property_response.json": (
        lambda: _command('{"method":"SET_PROPERTY","params":["combined",true],"id":5}'),
        frozenset(),
    ),
    "binance/get_property_response.json": (
        lambda: _command('{"method":"GET_PROPERTY","params":["combined"],"id":2}'),
        frozenset(),
    ),
    "binance/ws_error_too_many_subscriptions.json": (
        lambda: _command('{"method":"SUBSCRIBE","params":["ethusdt@kline_1m"],"id":19}', 1),
        frozenset(),
    ),
    "binance/rest_klines.json": (
        lambda: [_kline_row(T0, MINUTE_MS, BN.minute(BN.symbols[0], T0 // MINUTE_MS).bar, 2)],
        frozenset(),
    ),
    "binance/ticker_24hr.json": (lambda: ticker_24h(BN, BN.symbols[0], T0), frozenset()),
    "binance/ticker_24hr_list.json": (
        lambda: [ticker_24h(BN, s, T0) for s in BN.symbols],
        frozenset(),
    ),
    "binance/exchange_info_docs_example.json": (
        lambda: exchange_info(BN.symbols, T0, SimConfig()),
        # The docs example elides rate limits ({}) and lists smart-order-routing pairs.
        frozenset({"$.rateLimits[]", "$.sors"}),
    ),
    "binance/exchange_info_excerpt_2021_real.json": (
        lambda: exchange_info(BN.symbols, T0, SimConfig()),
        # 2021 capture: fewer symbol flags; filters vary per filter type.
        frozenset({"$.symbols[]", "$.sors"}),
    ),
    "binance/rate_limits_docs.json": (lambda: RATE_LIMITS, frozenset()),
    "binance/account.json": (lambda: account_body(BN, T0), frozenset()),
    "coinbase/candles_snapshot.json": (
        lambda: _cb_message("candles", [{"type": "snapshot", "candles": [_cb_candle()]}]),
        frozenset(),
    ),
    "coinbase/candles_update.json": (
        lambda: _cb_message("candles", [{"type": "update", "candles": [_cb_candle()]}]),
        frozenset(),
    ),
    "coinbase/market_trades.json": (
        lambda: _cb_message("market_trades", [{"type": "snapshot", "trades": _cb_trades()}]),
        frozenset(),
    ),
    "coinbase/market_trades_update.json": (
        lambda: _cb_message("market_trades", [{"type": "update", "trades": _cb_trades()}]),
        frozenset(),
    ),
    # The docs show the counter as a string, live captures as an integer (we send the integer).
    "coinbase/heartbeats.json": (_heartbeat, frozenset({"$.events[].heartbeat_counter"})),
    "coinbase/subscriptions.json": (
        lambda: _cb_message("subscriptions", [{"subscriptions": {"candles": ["BTC-USD"]}}]),
        frozenset({"$.events[].subscriptions"}),  # keys are channel names; checked below
    ),
    "coinbase/products.json": (
        lambda: {
            "products": [product_body(CB, s, T0) for s in CB.symbols],
            "num_products": 5,
            "pagination": None,
        },
        frozenset(),
    ),
    "coinbase/rest_candles.json": (
        lambda: {"candles": [_candle_row(T0, CB.minute(CB.symbols[0], T0 // MINUTE_MS).bar, 2)]},
        frozenset(),
    ),
    "coinbase/accounts.json": (lambda: accounts_body(CB), frozenset()),
    "coinbase/ws_error_authentication_failure.json": (
        lambda: json.loads(coinbase_error("authentication failure")),
        frozenset(),
    ),
    "coinbase/ws_error_too_many_l2_streams.json": (
        lambda: json.loads(coinbase_error("Failure to subscribe")),
        frozenset(),
    ),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_frame_matches_fixture_shape(fixtures_dir: Path, name: str) -> None:
    fixture = json.loads((fixtures_dir / name).read_text())
    build, ignore = BUILDERS[name]
    ours = build()
    assert mismatches(ours, fixture, ignore=ignore) == []


def test_heartbeat_counter_is_an_integer_counting_up() -> None:
    frames = Frames()
    counters = [json.loads(frames.heartbeat(1.0, 1.0, 0.0))["events"][0]["heartbeat_counter"]]
    counters.append(json.loads(frames.heartbeat(2.0, 2.0, 0.0))["events"][0]["heartbeat_counter"])
    assert counters == [1, 2]


def test_every_fixture_file_has_a_shape_test_or_is_a_request(fixtures_dir: Path) -> None:
    """New fixture files must be covered here (requests are what clients send, not frames)."""
    requests = {
        "binance/subscribe_request.json",
        "binance/unsubscribe_request.json",
        "binance/list_subscriptions_request.json",
        "binance/set_property_request.json",
        "binance/get_property_request.json",
        "binance/hmac_sha256_test_vector.json",
        "binance/kline_closed_1s_unattributed.json",  # 1s klines, not simulated
        "binance/rest_error_invalid_symbol.json",  # error bodies: checked over the wire
        "binance/rest_error_418_ip_banned.json",
        "coinbase/subscribe_candles_request.json",
        "coinbase/subscribe_heartbeats_request.json",
        "coinbase/unsubscribe_request.json",
        "coinbase/ticker.json",  # channels not simulated
        "coinbase/status.json",
    }
    files = {str(p.relative_to(fixtures_dir)) for p in fixtures_dir.rglob("*.json")}
    assert files - requests - set(BUILDERS) == set()
