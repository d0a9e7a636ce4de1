"""Alert state per series in Redis, committed with compare-and-set together with the alerts.

One script call commits a batch of series; for each it checks the stored state (timestamp and
bytes) is the one the evaluator started from, then writes the new state and publishes each alert
on its exchange's channel and the durable alert stream, atomically. Loads and commits are packed
in the Redis protocol and sent back to back: one reply per call, not per series, and no
`SCRIPT EXISTS` round trip before each batch (a round trip is a large share of the latency).

An alert's multi-timeframe context (DOMAIN.md §6: the stages of the symbol's other timeframes
and their weighted bias) is read inside the same script, from the stored indicator values, and
spliced into the payload: no separate read before the commit. The bias rule's parameters come
from `rules.py` (the script only sums weights and compares), and the result is what
`rules.timeframe_bias` gives for the same stages (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import msgspec
import redis.asyncio as aioredis

from livermore_common.redisbus import ScriptRunner, load_states, pack_command
from livermore_common.streams import DEFAULT_MAXLEN

from .rules import BEARISH_STAGES, BULLISH_STAGES, TIMEFRAME_WEIGHTS

# KEYS: the alert stream, then one state key per series.
# ARGV: stream maxlen, the bias rule (JSON: weights, bullish and bearish stages), then per series:
#   expected ts, expected state ('' when absent), new ts, state, channel, n alerts, then per alert:
#   payload, m; when m >= 0 the payload is the alert's JSON up to its context value, completed
#   here, followed by its own timeframe and stage and m (timeframe, indicator key) pairs.
# Returns {1 or 0 (CAS lost) per series, the context JSON of each alert published with one}.
_COMMIT = """
local maxlen, stream = ARGV[1], KEYS[1]
local rule
local function context(a, m)
  if not rule then
    rule = cjson.decode(ARGV[2])
    local bull, bear = {}, {}
    for _, s in ipairs(rule.bullish) do bull[s] = true end
    for _, s in ipairs(rule.bearish) do bear[s] = true end
    rule.bull, rule.bear = bull, bear
  end
  local tally = {0, 0}
  local parts = {}
  local function vote(tf, stage)
    parts[#parts + 1] = cjson.encode(tf) .. ':' .. cjson.encode(stage)
    local w = tonumber(rule.weights[tf]) or 0
    if rule.bull[stage] then
      tally[1] = tally[1] + w
    elseif rule.bear[stage] then
      tally[2] = tally[2] + w
    end
  end
  vote(ARGV[a], ARGV[a + 1])
  for j = 1, m do
    local raw = redis.call('GET', ARGV[a + 2 * j + 1])
    if raw then
      local stage = cjson.decode(raw).stage
      if type(stage) ~= 'string' then
        return error('indicator value without a stage: ' .. ARGV[a + 2 * j + 1])
      end
      vote(ARGV[a + 2 * j], stage)
    end
  end
  local bias = 'neutral'
  if tally[1] > 1.5 * tally[2] then
    bias = 'bullish'
  elseif tally[2] > 1.5 * tally[1] then
    bias = 'bearish'
  end
  return '{"stages":{' .. table.concat(parts, ',') .. '},"bias":"' .. bias .. '"}'
end
-- First every check and read (a failure here writes nothing), then the writes.
local out, contexts, writes, i = {}, {}, {}, 3
for k = 2, #KEYS do
  local current = redis.call('HMGET', KEYS[k], 'ts', 'state')
  local n = tonumber(ARGV[i + 5])
  local ok = (current[1] or '') == ARGV[i] and (current[2] or '') == ARGV[i + 1]
  local payloads = {}
  local a = i + 6
  for _ = 1, n do
    local payload, m = ARGV[a], tonumber(ARGV[a + 1])
    if ok then
      if m >= 0 then
        local ctx = context(a + 2, m)
        contexts[#contexts + 1] = ctx
        payload = payload .. ctx .. '}'
      end
      payloads[#payloads + 1] = payload
    end
    a = a + 2 + (m >= 0 and 2 + 2 * m or 0)
  end
  if ok then
    writes[#writes + 1] = {k, i, payloads}
  end
  out[#out + 1] = ok and 1 or 0
  i = a
end
for _, w in ipairs(writes) do
  local k, j = w[1], w[2]
  redis.call('HSET', KEYS[k], 'ts', ARGV[j + 2], 'state', ARGV[j + 3])
  for _, payload in ipairs(w[3]) do
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'data', payload)
    redis.call('PUBLISH', ARGV[j + 4], payload)
  end
end
return {out, contexts}
"""

_RULE = msgspec.json.encode(
    {
        "weights": dict(TIMEFRAME_WEIGHTS),
        "bullish": sorted(BULLISH_STAGES),
        "bearish": sorted(BEARISH_STAGES),
    }
)
# Where an encoded alert's context value starts: its last field, `null` when not given.
_NO_CONTEXT = b"null}"

# Series per script call: bounds how long one call holds Redis.
_CHUNK = 250


class ContextSpec(NamedTuple):
    """What the script needs to build an alert's context: the alert's own timeframe and stage,
    and the indicator keys of the symbol's other timeframes (in the order the stages appear)."""

    timeframe: str
    stage: str
    others: Sequence[tuple[str, str]]  # (timeframe, indicator key)


class Publication(NamedTuple):
    """One alert to publish: its encoded payload, and the context to complete it with (None: the
    payload is published as it is)."""

    payload: bytes
    context: ContextSpec | None = None


# (state_key, channel, expected_ts, expected_state, new_ts, state, alerts)
Commit = tuple[str, str, str, bytes, int, bytes, Sequence[Publication]]


class AlertStateStore:
    def __init__(self, redis: aioredis.Redis, *, stream: str, maxlen: int = DEFAULT_MAXLEN) -> None:
        self._redis = redis
        self._stream = stream
        self._maxlen = maxlen
        self._scripts = ScriptRunner(redis)

    async def load(self, state_keys: Sequence[str]) -> list[tuple[str, bytes | None]]:
        """(stored ts or '', state bytes or None) for each key, in one round trip."""
        return await load_states(self._scripts, state_keys, chunk=_CHUNK)

    async def commit(self, items: Sequence[Commit]) -> tuple[list[bool], list[bytes]]:
        """Commit the items in one round trip: per item, False where the CAS lost; and the
        context JSON of each published alert that had a `ContextSpec`, in order."""
        calls = [self._commit_call(items[i : i + _CHUNK]) for i in range(0, len(items), _CHUNK)]
        results: list[bool] = []
        contexts: list[bytes] = []
        for done, ctx in await self._scripts.run(_COMMIT, calls):
            results += [bool(r) for r in done]
            contexts += ctx
        return results, contexts

    def pack(self, items: Sequence[Commit]) -> bytes | None:
        """The commit call for `items` as `commit` sends it, without sending it (None until the
        script is loaded): the keep-warm rehearsal's last step."""
        sha = self._scripts.known_sha(_COMMIT)
        return None if sha is None else pack_command("EVALSHA", sha, *self._commit_call(items))

    def _commit_call(self, items: Sequence[Commit]) -> list[Any]:
        keys: list[str] = [self._stream]
        args: list[Any] = [self._maxlen, _RULE]
        for state_key, channel, expected, expected_state, new_ts, state, alerts in items:
            keys.append(state_key)
            args += [expected, expected_state, new_ts, state, channel, len(alerts)]
            for payload, spec in alerts:
                if spec is None:
                    args += [payload, -1]
                    continue
                if not payload.endswith(_NO_CONTEXT):
                    raise ValueError("an alert completed with a context must end without one")
                args += [payload[: -len(_NO_CONTEXT)], len(spec.others), spec.timeframe]
                args.append(spec.stage)
                for tf, key in spec.others:
                    args += [tf, key]
        return [len(keys), *keys, *args]
