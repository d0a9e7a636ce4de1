"""Live membership of one exchange's ingestors in Redis: a sorted set of leases.

Each instance refreshes its lease (score = expiry in ms) every `interval`; members whose lease has
expired are pruned by whoever looks. Membership changes are what trigger a rebalance.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from livermore_common.keys import KeySpace


class Membership:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: KeySpace,
        exchange_id: int,
        instance_id: str,
        *,
        lease_ms: int = 6000,
    ) -> None:
        self._redis = redis
        self._key = keys.ingestor_members_key(exchange_id)
        self.instance_id = instance_id
        self.lease_ms = lease_ms

    async def heartbeat(self) -> list[str]:
        """Renew this instance's lease and return the live members (sorted)."""
        now = int(time.time() * 1000)
        pipe = self._redis.pipeline(transaction=True)
        pipe.zadd(self._key, {self.instance_id: now + self.lease_ms})
        pipe.zremrangebyscore(self._key, "-inf", now)
        pipe.zrange(self._key, 0, -1)
        *_, members = await pipe.execute()
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def members(self) -> list[str]:
        now = int(time.time() * 1000)
        raw = await self._redis.zrangebyscore(self._key, now, "+inf")
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in raw)

    async def leave(self) -> None:
        await self._redis.zrem(self._key, self.instance_id)
