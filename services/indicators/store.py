"""Per-series indicator state in Redis, advanced with compare-and-set so workers can share series.

One Lua script commits a batch of series atomically; for each series it checks that the stored
state (its timestamp and its bytes) is still the one the worker started from, and only then
writes the new state, the indicator key(s), and each update to the durable stream and the pub/sub
channel. A worker that lost the race for a series reloads and retries it, so two workers never
publish the same update and none is lost. Loads and commits go out as a few script calls packed
in the Redis protocol and sent back to back (one reply per call, not per series: per-command
client overhead dominated at 20,000 closes/s).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from livermore_common.redisbus import ScriptRunner, load_states
from livermore_common.streams import DEFAULT_MAXLEN

# KEYS: the indicator stream, then per series its state key and its indicator key(s).
# ARGV: stream maxlen, then per series: expected ts, expected state, new ts, state, indicator
#   JSON, ttl (s), n indicator keys, channel, n updates, update x n (expected values '' when
#   absent). Returns 1 or 0 (CAS lost) per series.
_COMMIT = """
local maxlen, stream = ARGV[1], KEYS[1]
local out, k, i = {}, 2, 2
while i <= #ARGV do
  local state_key, json = KEYS[k], ARGV[i + 4]
  local ttl, n_keys, channel = tonumber(ARGV[i + 5]), tonumber(ARGV[i + 6]), ARGV[i + 7]
  local n_updates = tonumber(ARGV[i + 8])
  local current = redis.call('HMGET', state_key, 'ts', 'state')
  if (current[1] or '') == ARGV[i] and (current[2] or '') == ARGV[i + 1] then
    redis.call('HSET', state_key, 'ts', ARGV[i + 2], 'state', ARGV[i + 3])
    for j = 1, n_keys do
      if ttl > 0 then
        redis.call('SET', KEYS[k + j], json, 'EX', ttl)
      elseif json ~= '' then
        redis.call('SET', KEYS[k + j], json)
      end
    end
    for u = i + 9, i + 8 + n_updates do
      redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'data', ARGV[u])
      redis.call('PUBLISH', channel, ARGV[u])
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
  k = k + 1 + n_keys
  i = i + 9 + n_updates
end
return out
"""

# Series per script call: bounds how long one call holds Redis (a few ms).
_CHUNK = 250


class SeriesCommit:
    """What one series produced in one batch, ready to commit."""

    __slots__ = (
        "expected_state",
        "expected_ts",
        "indicator_json",
        "indicator_keys",
        "new_ts",
        "state",
        "ttl",
        "updates",
    )

    def __init__(
        self,
        *,
        expected_ts: str,
        new_ts: int,
        state: bytes,
        indicator_json: bytes,
        indicator_keys: Sequence[str],
        ttl: int,
        updates: Sequence[bytes],
        expected_state: bytes = b"",
    ) -> None:
        self.expected_ts = expected_ts
        self.new_ts = new_ts
        self.state = state
        self.indicator_json = indicator_json
        self.indicator_keys = indicator_keys
        self.ttl = ttl
        self.updates = updates
        # The stored state bytes the worker started from (b"" = none): checked with the ts.
        self.expected_state = expected_state


class StateStore:
    def __init__(self, redis: aioredis.Redis, *, stream: str, maxlen: int = DEFAULT_MAXLEN) -> None:
        self._redis = redis
        self._stream = stream
        self._maxlen = maxlen
        self._scripts = ScriptRunner(redis)

    async def load(self, state_keys: Sequence[str]) -> list[tuple[str, bytes | None]]:
        """(stored ts or '', state bytes or None) for each key, in one round trip."""
        return await load_states(self._scripts, state_keys, chunk=_CHUNK)

    async def commit(self, items: Sequence[tuple[str, str, SeriesCommit]]) -> list[bool]:
        """Commit (state_key, channel, commit) items in one round trip; False where the CAS lost."""
        calls = [self._commit_call(items[i : i + _CHUNK]) for i in range(0, len(items), _CHUNK)]
        return [bool(r) for reply in await self._scripts.run(_COMMIT, calls) for r in reply]

    def _commit_call(self, items: Sequence[tuple[str, str, SeriesCommit]]) -> list[Any]:
        keys: list[str] = [self._stream]
        args: list[Any] = [self._maxlen]
        for state_key, channel, c in items:
            keys += [state_key, *c.indicator_keys]
            args += [c.expected_ts, c.expected_state, c.new_ts, c.state, c.indicator_json, c.ttl]
            args += [len(c.indicator_keys), channel, len(c.updates), *c.updates]
        return [len(keys), *keys, *args]
