"""Readable one-line (and status block) renderings of responses, events and alerts for the CLIs."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping
from typing import Any

from livermore_common.messages import Alert, ControlResponse, LifecycleEvent

_STATUS_FIELDS = ("connection_state", "connected_at", "last_heartbeat", "last_error")
_TIME_FIELDS = frozenset({"connected_at", "last_heartbeat"})


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int | None) -> str:
    """Epoch milliseconds as `2024-01-01T00:00:00.000Z`; `-` when unknown."""
    if not ms:
        return "-"
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def age(ms: int | None, now: int) -> str:
    """`iso (12.3s ago)`, for times an operator reads relative to now."""
    if not ms:
        return "-"
    return f"{iso(ms)} ({max(0, now - ms) / 1000:.1f}s ago)"


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def compact(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True, default=str)


def response_line(response: ControlResponse) -> str:
    """`[instance] status: message`, as each answer arrives."""
    text = f"[{response.instance_id}] {response.status}"
    return f"{text}: {response.message}" if response.message else text


def response_details(verb: str, response: ControlResponse, now: int) -> list[str]:
    """Indented lines under a final answer: the status block, a start/stop result, or the data."""
    data = response.data
    if not data or response.status == "ack":
        return []
    if verb == "getStatus":
        return status_block(data, now)
    if verb in ("start", "stop"):
        state = data.get("connection_state", "-")
        return [f"  result: {data.get('result', '-')}, connection_state: {state}"]
    return [f"  data: {compact(data)}"]


def status_block(data: Mapping[str, Any], now: int) -> list[str]:
    """One ingestor instance's `getStatus` answer, one field per line."""
    rows: list[tuple[str, str]] = []
    for name in _STATUS_FIELDS:
        value = data.get(name)
        if name in _TIME_FIELDS:
            rows.append((name, age(_int(value), now)))
        else:
            rows.append((name, "-" if value in (None, "") else str(value)))
    symbols = data.get("symbols")
    count = len(symbols) if isinstance(symbols, list | tuple) else symbols
    rows.append(("symbols", "-" if count is None else str(count)))
    for name in ("timeframes", "members"):
        value = data.get(name)
        if isinstance(value, list | tuple):
            rows.append((name, ",".join(str(v) for v in value) or "-"))
    counters = data.get("counters")
    if isinstance(counters, Mapping):
        rows.append(("counters", " ".join(f"{k}={v}" for k, v in counters.items()) or "-"))
    return [f"  {name:<16} {value}" for name, value in rows]


def alert_line(alert: Alert, stream_id: str | None = None) -> str:
    """Source exchange, symbol, timeframe, label, value, price and time of one alert."""
    parts = [
        iso(alert.triggered_at),
        f"{alert.source_exchange_name}({alert.source_exchange_id})",
        alert.symbol,
        alert.timeframe,
        alert.trigger_label,
        f"macd_v={_number(alert.trigger_value)}",
        f"price={alert.price:g}",
        f"stage={alert.stage}",
        f"candle={iso(alert.candle_timestamp)}",
        f"id={alert.id}",
    ]
    if stream_id:
        parts.append(f"stream_id={stream_id}")
    return "  ".join(parts)


def event_line(message: ControlResponse | LifecycleEvent) -> str:
    """A lifecycle event or a command response from `channel:control:responses`."""
    if isinstance(message, LifecycleEvent):
        text = (
            f"{iso(message.timestamp)}  {message.event:<22} "
            f"{message.exchange}({message.exchange_id})  instance={message.instance_id}"
        )
        if message.error:
            text += f"  error={message.error}"
        if message.detail:
            text += f"  detail={compact(message.detail)}"
        return text
    text = (
        f"{iso(message.timestamp)}  response {message.status:<14} "
        f"{message.exchange}  instance={message.instance_id}  command={message.command_id}"
    )
    if message.message:
        text += f"  message={message.message}"
    return text
