"""Alert state per series in Redis, committed with compare-and-set together with the alerts.

The script checks the stored state is the one the evaluator started from, then writes the new
state and publishes each alert on its exchange's channel and the durable alert stream, atomically.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from livermore_common.streams import DEFAULT_MAXLEN

_COMMIT = """
local current = redis.call('HGET', KEYS[1], 'ts')
if (current or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'ts', ARGV[2], 'state', ARGV[3])
for i = 5, #ARGV do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'data', ARGV[i])
  redis.call('PUBLISH', KEYS[3], ARGV[i])
end
return 1
"""


class AlertStateStore:
    def __init__(self, redis: aioredis.Redis, *, stream: str, maxlen: int = DEFAULT_MAXLEN) -> None:
        self._redis = redis
        self._stream = stream
        self._maxlen = maxlen
        self._commit = redis.register_script(_COMMIT)

    async def load(self, state_keys: Sequence[str]) -> list[tuple[str, bytes | None]]:
        pipe = self._redis.pipeline(transaction=False)
        for key in state_keys:
            pipe.hmget(key, "ts", "state")
        return [(ts.decode() if ts else "", blob) for ts, blob in await pipe.execute()]

    async def commit(
        self, items: Sequence[tuple[str, str, str, int, bytes, Sequence[bytes]]]
    ) -> list[bool]:
        """(state_key, channel, expected_ts, new_ts, state, alerts) items; False where CAS lost."""
        pipe = self._redis.pipeline(transaction=False)
        for state_key, channel, expected, new_ts, state, alerts in items:
            await self._commit(
                keys=[state_key, self._stream, channel],
                args=[expected, str(new_ts), state, self._maxlen, *alerts],
                client=pipe,
            )
        return [bool(r) for r in await pipe.execute()]
