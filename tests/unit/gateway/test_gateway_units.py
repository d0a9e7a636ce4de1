"""Pure parts of the gateway: settings, auth, status aggregation, merges, SSE frames."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest
from aiohttp.test_utils import make_mocked_request

from livermore_common import messages
from livermore_common.config import ConfigError, Secret
from livermore_common.messages import (
    Alert,
    ControlResponse,
    LifecycleEvent,
    SymbolEntry,
    SymbolList,
)
from services.gateway import auth
from services.gateway.alerts import merge_alerts
from services.gateway.api import merge_symbols, relay_result
from services.gateway.config import load_settings
from services.gateway.events import to_frame
from services.gateway.status import overall_state

TOKEN = Secret("unit-test-token-0123456789")


def test_settings_need_a_long_enough_token_and_hide_it() -> None:
    with pytest.raises(ConfigError, match="LIVERMORE_GATEWAY_TOKEN"):
        load_settings({})
    with pytest.raises(ConfigError, match="at least 16"):
        load_settings({"LIVERMORE_GATEWAY_TOKEN": "short"})
    settings = load_settings(
        {"LIVERMORE_GATEWAY_TOKEN": TOKEN.reveal(), "LIVERMORE_GATEWAY_PORT": "9999"}
    )
    assert (settings.host, settings.port) == ("127.0.0.1", 9999)
    assert TOKEN.reveal() not in repr(settings)


def test_settings_reject_a_bad_port() -> None:
    with pytest.raises(ConfigError):
        load_settings({"LIVERMORE_GATEWAY_TOKEN": TOKEN.reveal(), "LIVERMORE_GATEWAY_PORT": "x"})


def _request(path: str, headers: dict[str, str] | None = None, cookie: str | None = None):
    hdrs = dict(headers or {})
    if cookie is not None:
        hdrs["Cookie"] = f"{auth.SESSION_COOKIE}={cookie}"
    return make_mocked_request("GET", path, headers=hdrs)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing bearer token"),
        ({"Authorization": "Basic abc"}, "malformed Authorization header"),
        ({"Authorization": "Bearer wrong-token"}, "invalid token"),
        ({"Authorization": "Bearer wröng"}, "invalid token"),
    ],
)
def test_requests_without_the_right_token_are_refused(headers, reason) -> None:
    result = auth.check_request(_request("/api/exchanges", headers), TOKEN)
    assert result is not None and result.startswith(reason)


def test_the_right_bearer_token_passes() -> None:
    request = _request("/api/exchanges", {"Authorization": f"Bearer {TOKEN.reveal()}"})
    assert auth.check_request(request, TOKEN) is None


def test_session_cookie_is_accepted_on_the_feed_only() -> None:
    cookie = auth.make_session_cookie(TOKEN, 60)
    assert TOKEN.reveal() not in cookie
    assert auth.check_request(_request("/api/events", cookie=cookie), TOKEN) is None
    assert auth.check_request(_request("/api/exchanges", cookie=cookie), TOKEN) is not None


def test_session_cookie_expires_and_resists_tampering() -> None:
    cookie = auth.make_session_cookie(TOKEN, 60, now=1000)
    assert auth.session_cookie_valid(cookie, TOKEN, now=1059)
    assert not auth.session_cookie_valid(cookie, TOKEN, now=1061)
    expires, _, mac = cookie.partition(".")
    assert not auth.session_cookie_valid(f"{int(expires) + 3600}.{mac}", TOKEN, now=1000)
    assert not auth.session_cookie_valid(cookie, Secret("another-token-0123456789"), now=1000)
    assert not auth.session_cookie_valid("garbage", TOKEN, now=1000)


@pytest.mark.parametrize(
    ("instances", "exchange_state", "expected"),
    [
        (["idle", "connected", "disconnected"], "idle", "connected"),
        (["idle", "connecting"], "connected", "connecting"),
        ([], "idle", "idle"),
        ([], None, "unknown"),
        (["bogus"], "disconnected", "disconnected"),
    ],
)
def test_overall_state_is_the_best_live_instance(instances, exchange_state, expected) -> None:
    exchange_hash = {"connection_state": exchange_state} if exchange_state else None
    items = [{"connection_state": s} for s in instances]
    assert overall_state(exchange_hash, items) == expected


def test_merged_symbol_list_tier_wins_and_order_is_tier_then_rank() -> None:
    rows = [
        {"symbol": "ETH-USD", "base": "ETH", "quote": "USD", "tier": 1, "volume_rank": 2},
        {"symbol": "BTC-USD", "base": "BTC", "quote": "USD", "tier": 1, "volume_rank": 1},
        {"symbol": "DOGE-USD", "base": "DOGE", "quote": "USD", "tier": 1, "volume_rank": 40},
    ]
    merged = SymbolList(
        exchange_id=1,
        updated_at=5,
        symbols=(
            SymbolEntry(symbol="BTC-USD", tier=1, volume_rank=1, user_ids=(7,)),
            SymbolEntry(symbol="DOGE-USD", tier=2, user_ids=(7, 8)),
            SymbolEntry(symbol="XLM-USD", tier=2, user_ids=(9,)),
        ),
    )
    items = merge_symbols(rows, merged)
    assert [(i["symbol"], i["tier"]) for i in items] == [
        ("BTC-USD", 1),
        ("ETH-USD", 1),
        ("DOGE-USD", 2),
        ("XLM-USD", 2),
    ]
    by = {i["symbol"]: i for i in items}
    assert by["DOGE-USD"]["user_count"] == 2 and by["DOGE-USD"]["in_symbol_list"]
    assert not by["ETH-USD"]["in_symbol_list"]
    assert by["XLM-USD"]["base"] is None


def _response(status: str, message: str | None = None) -> ControlResponse:
    return ControlResponse(
        command_id="c1",
        status=status,
        exchange="coinbase",
        instance_id="i1",
        timestamp=1,
        message=message,
    )


@pytest.mark.parametrize(
    ("statuses", "http"),
    [
        ([], 504),
        (["ack"], 504),
        (["ack", "success"], 200),
        (["ack", "already_started"], 200),
        (["error"], 502),
        (["ack", "error", "ack", "success"], 200),
    ],
)
def test_relay_result_maps_answers_to_http_status(statuses, http) -> None:
    row = {"id": 1, "name": "coinbase", "display_name": "Coinbase"}
    response = relay_result("start", row, [_response(s, "boom") for s in statuses], 2.0)
    assert response.status == http
    body = msgspec.json.decode(response.body)
    assert len(body["responses"]) == len(statuses)
    if http != 200:
        assert body["error"]


def _alert(alert_id: str, triggered_at: int, exchange_id: int = 1) -> Alert:
    return Alert(
        id=alert_id,
        source_exchange_id=exchange_id,
        source_exchange_name="coinbase",
        symbol="BTC-USD",
        timeframe="5m",
        alert_type="macdv",
        trigger_label="level_-150",
        trigger_value=-160.0,
        signal=-150.0,
        histogram=-10.0,
        stage="oversold",
        price=1.0,
        candle_timestamp=0,
        triggered_at=triggered_at,
    )


def test_alerts_merge_dedupes_by_id_newest_first() -> None:
    history = [
        {
            "id": 1,
            "alert_id": "a1",
            "exchange_id": 2,
            "symbol": "BTCUSDT",
            "timeframe": "1h",
            "alert_type": "macdv",
            "trigger_label": "level_200",
            "trigger_value": 210.0,
            "price": 2.0,
            "candle_timestamp": 0,
            "triggered_at": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
            "details": '{"stage": "overbought", "signal": 190.0}',
        },
        {
            "id": 2,
            "alert_id": "a2",
            "exchange_id": 1,
            "symbol": "BTC-USD",
            "timeframe": "5m",
            "alert_type": "macdv",
            "trigger_label": "level_-150",
            "trigger_value": -160.0,
            "price": 1.0,
            "candle_timestamp": 0,
            "triggered_at": 10,
            "details": {},
        },
    ]
    streamed = [_alert("a2", 10), _alert("a3", 1_800_000_000_000)]
    merged = merge_alerts(history, streamed, {1: "coinbase", 2: "binance"}, limit=10)
    assert [a["id"] for a in merged] == ["a3", "a1", "a2"]
    first_history = merged[1]
    assert first_history["source_exchange_name"] == "binance"
    assert first_history["stage"] == "overbought"
    assert first_history["triggered_at"] == 1_704_067_200_000
    assert merged[2]["signal"] == -150.0  # the stream's full copy won over the history row
    assert len(merge_alerts(history, streamed, {}, limit=2)) == 2


def test_frames_validate_payloads_and_name_the_event() -> None:
    prefix = "ns:channel:alerts:"
    alert_frame = to_frame("ns:channel:alerts:1", messages.encode(_alert("a", 1)), prefix)
    assert alert_frame is not None and alert_frame.startswith(b"event: alert\ndata: {")
    assert to_frame("ns:channel:alerts:1", b'{"id": "x"}', prefix) is None
    assert to_frame("ns:channel:alerts:1", b"\xff", prefix) is None
    event = LifecycleEvent(
        event="exchange:connected", exchange_id=1, exchange="coinbase", instance_id="i", timestamp=1
    )
    frame = to_frame("ns:channel:control:responses", messages.encode(event), prefix)
    assert frame is not None and frame.startswith(b"event: lifecycle\n")
    frame = to_frame("ns:channel:control:responses", messages.encode(_response("ack")), prefix)
    assert frame is not None and frame.startswith(b"event: response\n")
    assert frame.endswith(b"\n\n") and frame.count(b"\n") == 3
