"""Pure parts of the command-line clients: renderings, exchange filters, de-duplication, args."""

from __future__ import annotations

import pytest

from livermore_common.messages import Alert, ControlResponse, LifecycleEvent
from services.ctl import render
from services.ctl.__main__ import build_parser, request_from
from services.ctl.exchanges import ExchangeRef, given, split_refs
from services.ctl.feeds import ExchangeFilter, RecentIds
from services.ctl.tail import UsageError, options_from
from services.ctl.tail import build_parser as tail_parser

ALERT = Alert(
    id="abc",
    source_exchange_id=2,
    source_exchange_name="binance",
    symbol="BTCUSDT",
    timeframe="1h",
    alert_type="macdv",
    trigger_label="reversal_oversold",
    trigger_value=-171.8207,
    signal=None,
    histogram=None,
    stage="oversold",
    price=61234.5,
    candle_timestamp=1_704_067_200_000,
    triggered_at=1_704_070_801_000,
)


def test_iso_and_age() -> None:
    assert render.iso(1_704_067_200_123) == "2024-01-01T00:00:00.123Z"
    assert render.iso(None) == "-" and render.iso(0) == "-"
    assert render.age(1_000, now=3_500) == "1970-01-01T00:00:01.000Z (2.5s ago)"


def test_alert_line_names_the_source_exchange_and_values() -> None:
    line = render.alert_line(ALERT, "1704070801000-0")
    for part in (
        "2024-01-01T01:00:01.000Z",
        "binance(2)",
        "BTCUSDT",
        "1h",
        "reversal_oversold",
        "macd_v=-171.82",
        "price=61234.5",
        "stage=oversold",
        "id=abc",
        "stream_id=1704070801000-0",
    ):
        assert part in line


def test_status_block_counts_symbols_and_formats_times() -> None:
    data = {
        "connection_state": "connected",
        "connected_at": 1_000,
        "last_heartbeat": "2000",  # status hashes hold strings
        "last_error": "",
        "symbols": ["A", "B", "C"],
        "timeframes": ["1m"],
        "counters": {"closed": 1, "dropped": 2},
    }
    block = dict(line.split(None, 1) for line in render.status_block(data, now=3_000))
    assert block["connection_state"] == "connected"
    assert block["connected_at"] == "1970-01-01T00:00:01.000Z (2.0s ago)"
    assert block["last_heartbeat"] == "1970-01-01T00:00:02.000Z (1.0s ago)"
    assert block["last_error"] == "-"
    assert block["symbols"] == "3" and block["timeframes"] == "1m"
    assert block["counters"] == "closed=1 dropped=2"


def test_response_details_by_verb() -> None:
    started = ControlResponse(
        command_id="c",
        status="success",
        exchange="binance",
        instance_id="i",
        timestamp=1,
        data={"result": "started", "connection_state": "idle"},
    )
    assert render.response_line(started) == "[i] success"
    assert render.response_details("start", started, 0) == [
        "  result: started, connection_state: idle"
    ]
    assert render.response_details("refresh-symbols", started, 0)[0].startswith("  data: {")
    refused = ControlResponse(
        command_id="c", status="error", exchange="x", instance_id="i", timestamp=1, message="no"
    )
    assert render.response_line(refused) == "[i] error: no"
    assert render.response_details("getStatus", refused, 0) == []


def test_exchange_filter_matches_alerts_events_and_responses() -> None:
    everything = ExchangeFilter.of([])
    assert everything.everything and everything.matches_alert(ALERT)
    coinbase = ExchangeFilter.of([ExchangeRef(1, "coinbase")])
    assert not coinbase.matches_alert(ALERT)
    event = LifecycleEvent(
        event="exchange:idle", exchange_id=1, exchange="coinbase", instance_id="i", timestamp=1
    )
    assert coinbase.matches_event(event)
    by_id = ControlResponse(
        command_id="c", status="ack", exchange="1", instance_id="i", timestamp=1
    )
    assert coinbase.matches_event(by_id)
    assert not ExchangeFilter.of([given("binance")]).matches_event(event)


def test_recent_ids_forget_the_oldest() -> None:
    recent = RecentIds(limit=2)
    assert recent.add("a") and recent.add("b") and not recent.add("a")
    assert recent.add("c")  # evicts "a"
    assert recent.add("a")


def test_refs_split_and_given() -> None:
    assert split_refs(["coinbase,2", " binance "]) == ["coinbase", "2", "binance"]
    assert given("2") == ExchangeRef(2, None) and given("Coinbase") == ExchangeRef(None, "coinbase")


def test_ctl_arguments_become_a_request() -> None:
    args = build_parser().parse_args(["force-backfill", "1", "--symbols", "A, B,", "--json"])
    request = request_from(args)
    assert (request.verb, request.exchange, request.as_json) == ("force-backfill", "1", True)
    assert request.params == {"symbols": ["A", "B"]} and request.timeout == 10.0
    status = request_from(build_parser().parse_args(["status", "binance", "--timeout", "2.5"]))
    assert (status.verb, status.timeout, status.params) == ("getStatus", 2.5, {})


def test_tail_options() -> None:
    options = options_from(
        tail_parser().parse_args(
            ["alerts", "--exchange", "1,coinbase", "--from-stream", "--since", "5-1"]
        )
    )
    assert options.refs == ("1", "coinbase") and options.since == "5-1"
    with pytest.raises(UsageError):
        options_from(tail_parser().parse_args(["events", "--count", "0"]))
