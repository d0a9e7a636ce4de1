"""What the gateway reads from Redis: connection status, merged symbol lists, recent events."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
import redis.asyncio as aioredis

from livermore_common import messages
from livermore_common.instances import live_ingestor_instances
from livermore_common.keys import KeySpace
from livermore_common.messages import Alert, SymbolList

T = TypeVar("T")

# Connection states, best first: an exchange is as connected as its best live instance.
_STATE_RANK = {"connected": 0, "connecting": 1, "disconnected": 2, "idle": 3}
_INT_FIELDS = ("exchange_id", "connected_at", "last_heartbeat", "updated_at", "exchange_time")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _status_dict(raw: dict[Any, Any]) -> dict[str, Any]:
    """A status hash with its empty fields as null and its times as integers."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name, text = _text(key), _text(value)
        if text == "":
            out[name] = None
        elif name in _INT_FIELDS and text.lstrip("-").isdigit():
            out[name] = int(text)
        else:
            out[name] = text
    return out


def overall_state(exchange_hash: dict[str, Any] | None, instances: list[dict[str, Any]]) -> str:
    """The exchange's state: the best of its live instances, else its last recorded state."""
    states = [str(i.get("connection_state") or "") for i in instances]
    ranked = sorted((s for s in states if s in _STATE_RANK), key=_STATE_RANK.__getitem__)
    if ranked:
        return ranked[0]
    if exchange_hash and exchange_hash.get("connection_state"):
        return str(exchange_hash["connection_state"])
    return "unknown"


async def read_status(redis: aioredis.Redis, keys: KeySpace, exchange_id: int) -> dict[str, Any]:
    """Status of one exchange: the mirrored hash, each live instance's hash, the overall state."""
    instance_ids = sorted(
        _text(i) for i in await redis.smembers(keys.exchange_instances_key(exchange_id))
    )
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(keys.exchange_status_key(exchange_id))
    for iid in instance_ids:
        pipe.hgetall(keys.instance_status_key(exchange_id, iid))
    exchange_raw, *instance_raws = await pipe.execute()
    exchange_hash = _status_dict(exchange_raw) if exchange_raw else None
    # An instance whose hash expired is gone (crashed without cleaning up): leave it out.
    instances = [
        {"instance_id": iid, **_status_dict(raw)}
        for iid, raw in zip(instance_ids, instance_raws, strict=True)
        if raw
    ]
    return {
        "connection_state": overall_state(exchange_hash, instances),
        "exchange_status": exchange_hash,
        "instances": instances,
    }


async def live_instance_count(
    redis: aioredis.Redis, keys: KeySpace, exchange_id: int, exchange: str
) -> int:
    """Ingestor instances of an exchange whose process is alive (its health key is fresh): the
    relay waits for this many final answers, never for a crashed instance."""
    return len(await live_ingestor_instances(redis, keys, exchange_id, exchange))


async def read_symbol_list(
    redis: aioredis.Redis, keys: KeySpace, exchange_id: int
) -> SymbolList | None:
    """The merged tier list the ingestors follow; None when absent or unreadable."""
    raw = await redis.get(keys.symbol_list_key(exchange_id))
    if not raw:
        return None
    try:
        return messages.decode(raw, SymbolList)
    except msgspec.MsgspecError:
        return None


async def recent_stream_alerts(
    redis: aioredis.Redis, keys: KeySpace, *, exchange_id: int | None, limit: int
) -> list[Alert]:
    """Newest alerts from the durable alert stream, optionally of one exchange."""
    found: list[Alert] = []
    # Scan a bounded window: filtering by exchange may need more than `limit` entries.
    entries = await redis.xrevrange(keys.alert_stream, count=max(limit * 4, 100)) or []
    for _, fields in entries:
        alert = _decode_entry(fields or {}, Alert)
        if alert is None or (exchange_id is not None and alert.source_exchange_id != exchange_id):
            continue
        found.append(alert)
        if len(found) >= limit:
            break
    return found


async def recent_lifecycle(
    redis: aioredis.Redis, keys: KeySpace, *, exchange_id: int | None, limit: int
) -> list[messages.LifecycleEvent]:
    """Newest lifecycle events from the lifecycle stream, optionally of one exchange."""
    found: list[messages.LifecycleEvent] = []
    entries = await redis.xrevrange(keys.lifecycle_stream, count=max(limit * 4, 100)) or []
    for _, fields in entries:
        event = _decode_entry(fields or {}, messages.LifecycleEvent)
        if event is None or (exchange_id is not None and event.exchange_id != exchange_id):
            continue
        found.append(event)
        if len(found) >= limit:
            break
    return found


def _decode_entry(fields: dict[Any, Any], type_: type[T]) -> T | None:
    data = fields.get(b"data", fields.get("data"))
    if data is None:
        return None
    try:
        return messages.decode(data, type_)
    except msgspec.MsgspecError:
        return None
