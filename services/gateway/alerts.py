"""Recent alerts from two sources: `alert_history` rows and the durable alert stream, merged."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from livermore_common.messages import Alert

from .rows import epoch_ms

# Fields of the published alert (DOMAIN.md §6) that alert_history keeps only inside `details`.
_DETAIL_FIELDS = ("signal", "histogram", "stage", "context")


def _details(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return dict(value) if isinstance(value, Mapping) else {}


def history_alert(row: Mapping[str, Any], names: Mapping[int, str]) -> dict[str, Any]:
    """An alert_history row in the shape of the published alert payload."""
    details = _details(row.get("details"))
    exchange_id = row.get("exchange_id")
    return {
        "id": row.get("alert_id") or f"history:{row.get('id')}",
        "source_exchange_id": exchange_id,
        "source_exchange_name": names.get(int(exchange_id)) if exchange_id is not None else None,
        "symbol": row.get("symbol"),
        "timeframe": row.get("timeframe"),
        "alert_type": row.get("alert_type"),
        "trigger_label": row.get("trigger_label"),
        "trigger_value": row.get("trigger_value"),
        "price": row.get("price"),
        "candle_timestamp": row.get("candle_timestamp"),
        "triggered_at": epoch_ms(row.get("triggered_at")),
        **{f: details.get(f) for f in _DETAIL_FIELDS},
    }


def merge_alerts(
    history: Sequence[Mapping[str, Any]],
    streamed: Sequence[Alert],
    names: Mapping[int, str],
    limit: int,
) -> list[dict[str, Any]]:
    """Newest first, one entry per alert id (the stream's copy wins: it is the full payload)."""
    by_id: dict[str, dict[str, Any]] = {}
    for row in history:
        alert = history_alert(row, names)
        by_id[str(alert["id"])] = alert
    for item in streamed:
        by_id[item.id] = msgspec.to_builtins(item)
    ordered = sorted(by_id.values(), key=lambda a: a.get("triggered_at") or 0, reverse=True)
    return ordered[:limit]
