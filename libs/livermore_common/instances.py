"""Which ingestor instances of an exchange are alive: its instance set, filtered by health keys."""

from __future__ import annotations

import redis.asyncio as aioredis

from livermore_common.keys import KeySpace


def ingestor_service_name(exchange: str) -> str:
    """The lifecycle service name an exchange's ingestors run under (`health:{name}:{iid}`)."""
    return f"ingestor-{exchange}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def live_ingestor_instances(
    redis: aioredis.Redis, keys: KeySpace, exchange_id: int, exchange: str
) -> list[str]:
    """Sorted ids of the instances in `exchange:status:{id}:instances` whose process is alive.

    An instance that crashed stays in the set (and keeps its status hash for a while), but the
    lifecycle runner's health key expires within seconds, so it is not counted.
    """
    ids = sorted(_text(i) for i in await redis.smembers(keys.exchange_instances_key(exchange_id)))
    if not ids:
        return []
    service = ingestor_service_name(exchange)
    pipe = redis.pipeline(transaction=False)
    for iid in ids:
        pipe.exists(keys.health_key(service, iid))
    found = await pipe.execute()
    return [iid for iid, alive in zip(ids, found, strict=True) if alive]
