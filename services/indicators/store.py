"""Per-series indicator state in Redis, advanced with compare-and-set so workers can share series.

One Lua script commits a part of a batch (up to 250 series) atomically; for each series it checks
that the stored state (its timestamp and its bytes) is still the one the worker started from, and
only then writes the new state, the indicator key(s), and each update to the durable stream and
the pub/sub channel. A worker that lost the race for a series reloads and retries it, so two
workers never publish the same update and none is lost. Loads and commits are script calls
packed in the Redis protocol by hand (one format operation per series; redis-py's packer and
per-command overhead dominated at 20,000 closes/s); a batch's commit calls are sent on one
connection as the worker computes them, so Redis commits one part while the next is built, and
their replies are read at the end.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import redis.asyncio as aioredis

from livermore_common.redisbus import PackedSender, ScriptRunner, load_states
from livermore_common.streams import DEFAULT_MAXLEN

# KEYS: the indicator stream, then per series its state key and its indicator key(s).
# ARGV: stream maxlen, then per series: expected ts, expected state, new ts, state, indicator
#   JSON, ttl (s), n indicator keys, channel, n updates, update x n (expected values '' when
#   absent). Returns 1 or 0 (CAS lost) per series. The stream is trimmed once per call: XADD
#   with MAXLEN costs ~1 us more per entry (Redis rewrites its arguments for propagation).
_COMMIT = """
local maxlen, stream = ARGV[1], KEYS[1]
local out, k, i, added = {}, 2, 2, false
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
      redis.call('XADD', stream, '*', 'data', ARGV[u])
      redis.call('PUBLISH', channel, ARGV[u])
      added = true
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
  k = k + 1 + n_keys
  i = i + 9 + n_updates
end
if added then redis.call('XTRIM', stream, 'MAXLEN', '~', maxlen) end
return out
"""

# Series per script call: bounds how long one call holds Redis (a few ms).
_CHUNK = 250
_NAME_CACHE_LIMIT = 200_000


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(data), data)


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


CommitItem = tuple[str, str, SeriesCommit]  # (state key, channel, commit)


class StateStore:
    def __init__(self, redis: aioredis.Redis, *, stream: str, maxlen: int = DEFAULT_MAXLEN) -> None:
        self._redis = redis
        self._stream = stream
        self._maxlen = maxlen
        self._scripts = ScriptRunner(redis)
        self._head = _bulk(stream.encode()), _bulk(b"%d" % maxlen)
        # Key and channel names as RESP bulk strings, packed once per name.
        self._packed: dict[str, bytes] = {}

    async def load(self, state_keys: Sequence[str]) -> list[tuple[str, bytes | None]]:
        """(stored ts or '', state bytes or None) for each key, in one round trip."""
        return await load_states(self._scripts, state_keys, chunk=_CHUNK)

    async def commit(self, items: Sequence[CommitItem]) -> list[bool]:
        """Commit (state_key, channel, commit) items in one round trip; False where the CAS lost."""
        async with self.committer() as committer:
            await committer.send(items)
            return await committer.results()

    @contextlib.asynccontextmanager
    async def committer(self) -> AsyncIterator[Committer]:
        """A commit sent in parts as they are ready (Redis commits one part while the worker
        computes the next); `results()` at the end says, per item in order, whether its CAS won.
        Each part is committed on its own: a failure later in the batch leaves the parts already
        sent committed (or not, if the connection broke first), which a retry sees as done."""
        sha = (await self._scripts.sha(_COMMIT)).encode()
        async with PackedSender(self._redis) as sender:
            yield Committer(self, sender, sha)

    def pack(self, items: Sequence[CommitItem]) -> bytes | None:
        """The commit call for `items` as `committer` sends it, without sending it (None until
        the script is loaded): the keep-warm rehearsal's last step."""
        sha = self._scripts.known_sha(_COMMIT)
        return None if sha is None else self._pack(sha.encode(), items)

    def _name(self, name: str) -> bytes:
        packed = self._packed.get(name)
        if packed is None:
            if len(self._packed) >= _NAME_CACHE_LIMIT:
                self._packed.clear()
            packed = self._packed[name] = _bulk(name.encode())
        return packed

    def _pack(self, sha: bytes, items: Sequence[CommitItem]) -> bytes:
        """One EVALSHA of the commit script for `items`, in the Redis protocol (the hot path:
        names packed once, one format operation per series instead of one per argument)."""
        stream, maxlen = self._head
        keys, args, n_args = [stream], [maxlen], 1
        packed, name = self._packed, self._name
        for state_key, channel, c in items:
            keys.append(packed.get(state_key) or name(state_key))
            for key in c.indicator_keys:
                keys.append(packed.get(key) or name(key))
            exp_ts, new_ts, ttl = c.expected_ts.encode(), b"%d" % c.new_ts, b"%d" % c.ttl
            exp_state, state, json, updates = c.expected_state, c.state, c.indicator_json, c.updates
            n_keys, n_updates = len(c.indicator_keys), len(updates)
            args.append(
                b"$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"
                b"$%d\r\n%b\r\n$%d\r\n%d\r\n%b$%d\r\n%d\r\n"
                % (
                    len(exp_ts),
                    exp_ts,
                    len(exp_state),
                    exp_state,
                    len(new_ts),
                    new_ts,
                    len(state),
                    state,
                    len(json),
                    json,
                    len(ttl),
                    ttl,
                    len(str(n_keys)),
                    n_keys,
                    packed.get(channel) or name(channel),
                    len(str(n_updates)),
                    n_updates,
                )
            )
            for update in updates:
                args.append(b"$%d\r\n%b\r\n" % (len(update), update))
            n_args += 9 + n_updates
        n_keys_all = b"%d" % len(keys)
        return b"*%d\r\n$7\r\nEVALSHA\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n%b%b" % (
            3 + len(keys) + n_args,
            len(sha),
            sha,
            len(n_keys_all),
            n_keys_all,
            b"".join(keys),
            b"".join(args),
        )


class Committer:
    """One batch's commit calls on one connection (see `StateStore.committer`)."""

    def __init__(self, store: StateStore, sender: PackedSender, sha: bytes) -> None:
        self._store = store
        self._sender = sender
        self._sha = sha
        self._commands: list[bytes] = []

    async def send(self, items: Sequence[CommitItem]) -> None:
        """Send `items` now (one script call per 250 series)."""
        for i in range(0, len(items), _CHUNK):
            command = self._store._pack(self._sha, items[i : i + _CHUNK])
            self._commands.append(command)
            await self._sender.send(command)

    async def results(self) -> list[bool]:
        """Per item sent, in order: True if committed, False where the CAS lost."""
        replies = await self._sender.replies()
        replies = await self._store._scripts.settle(_COMMIT, self._commands, replies)
        self._commands = []
        return [bool(r) for reply in replies for r in reply]
