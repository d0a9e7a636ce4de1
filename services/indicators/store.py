"""Per-series indicator state in Redis, advanced with compare-and-set so workers can share series.

One Lua script commits a series' progress atomically: it checks that the stored state is still the
one the worker started from, then writes the new state, the indicator key(s), and each update to the
durable stream and the pub/sub channel. A worker that lost the race reloads and retries, so two
workers never publish the same update and none is lost.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from livermore_common.streams import DEFAULT_MAXLEN

_COMMIT = """
local current = redis.call('HGET', KEYS[1], 'ts')
if (current or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'ts', ARGV[2], 'state', ARGV[3])
local ttl = tonumber(ARGV[5])
local n_keys = tonumber(ARGV[6])
for i = 1, n_keys do
  if ttl > 0 then
    redis.call('SET', KEYS[3 + i], ARGV[4], 'EX', ttl)
  elseif ARGV[4] ~= '' then
    redis.call('SET', KEYS[3 + i], ARGV[4])
  end
end
for i = 8, #ARGV do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*', 'data', ARGV[i])
  redis.call('PUBLISH', KEYS[3], ARGV[i])
end
return 1
"""


class SeriesCommit:
    """What one series produced in one batch, ready to commit."""

    __slots__ = (
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
    ) -> None:
        self.expected_ts = expected_ts
        self.new_ts = new_ts
        self.state = state
        self.indicator_json = indicator_json
        self.indicator_keys = indicator_keys
        self.ttl = ttl
        self.updates = updates


class StateStore:
    def __init__(self, redis: aioredis.Redis, *, stream: str, maxlen: int = DEFAULT_MAXLEN) -> None:
        self._redis = redis
        self._stream = stream
        self._maxlen = maxlen
        self._commit = redis.register_script(_COMMIT)

    async def load(self, state_keys: Sequence[str]) -> list[tuple[str, bytes | None]]:
        """(stored ts or '', state bytes or None) for each key, in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for key in state_keys:
            pipe.hmget(key, "ts", "state")
        replies = await pipe.execute()
        out: list[tuple[str, bytes | None]] = []
        for ts, state in replies:
            out.append((ts.decode() if ts else "", state))
        return out

    async def commit(self, items: Sequence[tuple[str, str, SeriesCommit]]) -> list[bool]:
        """Commit (state_key, channel, commit) items in one pipeline; False where the CAS lost."""
        pipe = self._redis.pipeline(transaction=False)
        for state_key, channel, c in items:
            keys = [state_key, self._stream, channel, *c.indicator_keys]
            args: list[bytes | str | int] = [
                c.expected_ts,
                str(c.new_ts),
                c.state,
                c.indicator_json,
                c.ttl,
                len(c.indicator_keys),
                self._maxlen,
                *c.updates,
            ]
            await self._commit(keys=keys, args=args, client=pipe)
        results = await pipe.execute()
        return [bool(r) for r in results]
