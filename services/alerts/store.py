"""Alert state per series in Redis, committed with compare-and-set together with the alerts.

One script call commits a batch of series; for each it checks the stored state (timestamp and
bytes) is the one the evaluator started from, then writes the new state and publishes each alert
on its exchange's channel and the durable alert stream, atomically. Loads and commits are packed
in the Redis protocol and sent back to back: one reply per call, not per series, and no
`SCRIPT EXISTS` round trip before each batch (a round trip is a large share of the latency).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from livermore_common.redisbus import ScriptRunner, load_states
from livermore_common.streams import DEFAULT_MAXLEN

# KEYS: the alert stream, then one state key per series.
# ARGV: stream maxlen, then per series: expected ts, expected state ('' when absent), new ts,
#   state, channel, n alerts, alert x n. Returns 1 or 0 (CAS lost) per series.
_COMMIT = """
local maxlen, stream = ARGV[1], KEYS[1]
local out, i = {}, 2
for k = 2, #KEYS do
  local current = redis.call('HMGET', KEYS[k], 'ts', 'state')
  local channel, n = ARGV[i + 4], tonumber(ARGV[i + 5])
  if (current[1] or '') == ARGV[i] and (current[2] or '') == ARGV[i + 1] then
    redis.call('HSET', KEYS[k], 'ts', ARGV[i + 2], 'state', ARGV[i + 3])
    for a = i + 6, i + 5 + n do
      redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'data', ARGV[a])
      redis.call('PUBLISH', channel, ARGV[a])
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
  i = i + 6 + n
end
return out
"""

# Series per script call: bounds how long one call holds Redis.
_CHUNK = 250

# (state_key, channel, expected_ts, expected_state, new_ts, state, alerts)
Commit = tuple[str, str, str, bytes, int, bytes, Sequence[bytes]]


class AlertStateStore:
    def __init__(self, redis: aioredis.Redis, *, stream: str, maxlen: int = DEFAULT_MAXLEN) -> None:
        self._redis = redis
        self._stream = stream
        self._maxlen = maxlen
        self._scripts = ScriptRunner(redis)

    async def load(self, state_keys: Sequence[str]) -> list[tuple[str, bytes | None]]:
        """(stored ts or '', state bytes or None) for each key, in one round trip."""
        return await load_states(self._scripts, state_keys, chunk=_CHUNK)

    async def commit(self, items: Sequence[Commit]) -> list[bool]:
        """Commit the items in one round trip; False where the CAS lost."""
        calls = [self._commit_call(items[i : i + _CHUNK]) for i in range(0, len(items), _CHUNK)]
        return [bool(r) for reply in await self._scripts.run(_COMMIT, calls) for r in reply]

    def _commit_call(self, items: Sequence[Commit]) -> list[Any]:
        keys: list[str] = [self._stream]
        args: list[Any] = [self._maxlen]
        for state_key, channel, expected, expected_state, new_ts, state, alerts in items:
            keys.append(state_key)
            args += [expected, expected_state, new_ts, state, channel, len(alerts), *alerts]
        return [len(keys), *keys, *args]
