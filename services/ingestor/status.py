"""Connection status tracking (EXC-04) and lifecycle events (CTL-04) for one ingestor instance.

Each instance keeps its own hash `exchange:status:{ex}:instance:{id}`; the exchange-level hash
`exchange:status:{ex}` mirrors the latest transition of any instance together with an
`instances` field, so `getStatus` and the admin page answer from real tracking.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from livermore_common import messages
from livermore_common.keys import KeySpace
from livermore_common.messages import LifecycleEvent

IDLE, CONNECTING, CONNECTED, DISCONNECTED = "idle", "connecting", "connected", "disconnected"
_EVENT_OF_STATE = {
    CONNECTING: "exchange:connecting",
    CONNECTED: "exchange:connected",
    DISCONNECTED: "exchange:disconnected",
    IDLE: "exchange:idle",
}
_INSTANCE_TTL_S = 3600


def _now_ms() -> int:
    return int(time.time() * 1000)


class StatusTracker:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: KeySpace,
        *,
        exchange_id: int,
        exchange: str,
        instance_id: str,
        host: str = "",
    ) -> None:
        self._redis = redis
        self._keys = keys
        self.exchange_id = exchange_id
        self.exchange = exchange
        self.instance_id = instance_id
        self._host = host
        self.state = IDLE
        self.connected_at: int | None = None
        self.last_heartbeat: int | None = None
        self.last_error: str | None = None
        # Called with each new state (the runner mirrors it in the service's health key).
        self.on_state: Callable[[str], None] | None = None

    @property
    def _instance_key(self) -> str:
        return self._keys.instance_status_key(self.exchange_id, self.instance_id)

    @property
    def _exchange_key(self) -> str:
        return self._keys.exchange_status_key(self.exchange_id)

    def snapshot(self) -> dict[str, Any]:
        return {
            "exchange_id": self.exchange_id,
            "exchange": self.exchange,
            "instance_id": self.instance_id,
            "connection_state": self.state,
            "connected_at": self.connected_at,
            "last_heartbeat": self.last_heartbeat,
            "last_error": self.last_error,
        }

    def _fields(self) -> dict[FieldT, EncodableT]:
        snap = self.snapshot()
        return {k: "" if v is None else str(v) for k, v in snap.items()}

    async def set_state(
        self, state: str, *, error: str | None = None, detail: dict[str, Any] | None = None
    ) -> None:
        """Record a transition, mirror it in Redis, and publish the lifecycle event."""
        now = _now_ms()
        self.state = state
        if self.on_state is not None:
            self.on_state(state)
        if state == CONNECTED:
            self.connected_at = now
            self.last_heartbeat = now
        elif state in (IDLE, DISCONNECTED):
            self.connected_at = None
        if error is not None:
            self.last_error = error
        event = LifecycleEvent(
            event="exchange:error" if error and state != DISCONNECTED else _EVENT_OF_STATE[state],
            exchange_id=self.exchange_id,
            exchange=self.exchange,
            instance_id=self.instance_id,
            timestamp=now,
            error=error,
            detail=detail,
        )
        await self._write(now, event)

    async def _write(self, now: int, event: LifecycleEvent) -> None:
        fields = self._fields() | {"updated_at": str(now), "host": self._host}
        payload = messages.encode(event)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._instance_key, mapping=fields)
        pipe.expire(self._instance_key, _INSTANCE_TTL_S)
        pipe.hset(self._exchange_key, mapping=fields)
        pipe.sadd(self._keys.exchange_instances_key(self.exchange_id), self.instance_id)
        pipe.publish(self._keys.control_responses_channel, payload)
        pipe.xadd(self._keys.lifecycle_stream, {"data": payload}, maxlen=10_000, approximate=True)
        await pipe.execute()

    async def heartbeat(self, exchange_time: int | None = None) -> None:
        """Refresh `last_heartbeat` on every WS ping or exchange heartbeat."""
        self.last_heartbeat = _now_ms()
        value = str(self.last_heartbeat)
        fields: dict[FieldT, EncodableT] = {"last_heartbeat": value}
        if exchange_time is not None:
            fields["exchange_time"] = str(exchange_time)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(self._instance_key, mapping=fields)
        pipe.hset(self._exchange_key, mapping=fields)
        await pipe.execute()

    async def forget(self) -> None:
        """On exit: drop this instance's hash and membership of the instance set."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._instance_key)
        pipe.srem(self._keys.exchange_instances_key(self.exchange_id), self.instance_id)
        await pipe.execute()
