"""The candle and indicator cache: exchange-scoped keys (tier 1), user overflow (tier 2), dual read.

A closed candle is stored and announced by one Lua script, so the write, the XADD on the durable
stream and the PUBLISH happen atomically and once per (exchange, symbol, timeframe, bucket): a
member already stored at that score means the candle was announced before, and nothing happens
(first write wins). Older buckets may be inserted (backfill); only same-score duplicates are
refused. Readers try the exchange-scoped key first and, when asked, fall back to the previous
release's user-scoped key (DATA-04).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from livermore_common import messages
from livermore_common.keys import TIER_SHARED, TIER_USER, KeySpace
from livermore_common.logs import get_logger
from livermore_common.messages import Candle, CandleClosed, IndicatorUpdate
from livermore_common.redisbus import PackedSender, execute_packed, pack_bulk
from livermore_common.streams import DEFAULT_MAXLEN

# One call stores and announces a batch of candles (one script dispatch for many candles).
# KEYS: the stream, then every sorted set the call writes (each once).
# ARGV: max candles, stream maxlen, tier-2 TTL ms, C = channels per candle, then per candle:
#   target, score (bucket start), member, event JSON, C channels, then for a tier-2 candle the key
#   index of each of its sets. target > 0: the candle's one tier-1 set is KEYS[target];
#   target < 0: it goes to -target tier-2 sets (their TTL is refreshed).
# A candle is stored in each target that lacks its bucket, unless it is older than the newest
# `max candles` there (it would be trimmed at once, and announced again by the next backfill);
# it is announced (XADD + PUBLISH) when at least one target stored it. Each written set is then
# trimmed to its newest `max candles`, and the stream to about `maxlen`, once per call.
# Returns how many candles were announced.
# Costs (Redis 7.0, measured with INFO commandstats): every ARGV and every redis.call costs
# ~0.3 us on its own, so the common case is 5 calls per candle (ZCOUNT, ZADD, XADD, PUBLISH and
# its set's trim) and no per-series table; XADD carries no MAXLEN (with one, Redis rewrites the
# command's arguments for propagation on every call).
ANNOUNCE_SCRIPT = """
local keep, maxlen, ttl, nch = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local stream, last, i, announced, touched = KEYS[1], #ARGV, 5, 0, {}
while i <= last do
  local target, score, event = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 3]
  local stored, count, at, step = false, 1, 0, 4 + nch
  if target < 0 then count, at, step = -target, i + 3 + nch, 4 + nch - target end
  for t = 1, count do
    local key = KEYS[at == 0 and target or tonumber(ARGV[at + t])]
    -- newer-or-equal members: 0 in the common case (a new newest candle), so one call decides;
    -- store unless this bucket is there already (first write wins) or older than the window
    local newer = redis.call('ZCOUNT', key, score, '+inf')
    if newer == 0 or (newer < keep and redis.call('ZCOUNT', key, score, score) == 0) then
      redis.call('ZADD', key, score, ARGV[i + 2])
      touched[key] = at ~= 0
      stored = true
    end
  end
  if stored then
    announced = announced + 1
    redis.call('XADD', stream, '*', 'data', event)
    for c = i + 4, i + 3 + nch do redis.call('PUBLISH', ARGV[c], event) end
  end
  i = i + step
end
for key, user in pairs(touched) do
  redis.call('ZREMRANGEBYRANK', key, 0, -(keep + 1))
  if user and ttl > 0 then redis.call('PEXPIRE', key, ttl) end
end
if announced > 0 then redis.call('XTRIM', stream, 'MAXLEN', '~', maxlen) end
return announced
"""

# Candles per script call: bounds how long one call holds Redis (a few ms) so that other clients'
# latency stays low; the calls of one batch are sent back to back on one connection.
_SCRIPT_BATCH = 250
_NAME_CACHE_LIMIT = 100_000
_candle_encoder = msgspec.json.Encoder()
_log = get_logger(__name__)
# EVAL with the body rather than EVALSHA: Redis hashes the ~1.5 kB body once per call of up to
# 250 candles (a few microseconds), and a server that lost its scripts (restart, SCRIPT FLUSH)
# never refuses a call, so no call is ever rerun out of order.
_EVAL_HEAD = b"$4\r\nEVAL\r\n$%d\r\n%b\r\n" % (len(ANNOUNCE_SCRIPT), ANNOUNCE_SCRIPT.encode())


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(data), data)


def candle_member(candle: Candle | CandleClosed) -> bytes:
    """The stored JSON of a candle: exactly timestamp, open, high, low, close, volume."""
    if isinstance(candle, CandleClosed):
        candle = candle.candle()
    return _candle_encoder.encode(candle)


def _decode_candles(members: list[Any]) -> list[Candle]:
    # One decode call for the whole range instead of one per member.
    return messages.decode(b"[" + b",".join(members) + b"]", list[Candle])


class CandleCache:
    """Reads and writes candles and indicator values; see the module docstring for guarantees."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: KeySpace,
        *,
        max_candles: int = 1000,
        user_ttl_seconds: int = 86_400,
        stream_maxlen: int = DEFAULT_MAXLEN,
    ) -> None:
        if max_candles < 1:
            raise ValueError("max_candles must be positive")
        self._redis = redis
        self._keys = keys
        self.max_candles = max_candles
        self.user_ttl_seconds = user_ttl_seconds
        self._stream_maxlen = stream_maxlen
        # (exchange_id, symbol, timeframe) -> (shared key, close channel): names are validated
        # once per series, not once per candle, on the hot path.
        self._names: dict[tuple[int, str, str], tuple[str, str]] = {}
        # the same series -> (shared key, close channel as a RESP bulk string) for announcing
        self._announce_names: dict[tuple[int, str, str], tuple[str, bytes]] = {}

    @property
    def redis(self) -> aioredis.Redis:
        """The client it writes with."""
        return self._redis

    # -- names -------------------------------------------------------------------------------
    def _series(self, exchange_id: int, symbol: str, timeframe: str) -> tuple[str, str]:
        series = (exchange_id, symbol, timeframe)
        names = self._names.get(series)
        if names is None:
            if len(self._names) >= _NAME_CACHE_LIMIT:
                self._names.clear()
            names = self._names[series] = (
                self._keys.candle_key(exchange_id, symbol, timeframe),
                self._keys.candle_close_channel(exchange_id, symbol, timeframe),
            )
        return names

    def candle_sets(self, event: CandleClosed) -> list[str]:
        """The sorted sets an event is stored in: the shared key, or each holder's overflow key."""
        if event.tier == TIER_USER:
            if not event.user_ids:
                raise ValueError("a tier-2 candle needs the user ids that hold the symbol")
            return [
                self._keys.user_candle_key(u, event.exchange_id, event.symbol, event.timeframe)
                for u in event.user_ids
            ]
        return [self._series(event.exchange_id, event.symbol, event.timeframe)[0]]

    def _candle_key(
        self, exchange_id: int, symbol: str, timeframe: str, tier: int, user_id: int | None
    ) -> str:
        if tier == TIER_USER:
            if user_id is None:
                raise ValueError("tier 2 reads need a user_id")
            return self._keys.user_candle_key(user_id, exchange_id, symbol, timeframe)
        return self._series(exchange_id, symbol, timeframe)[0]

    # -- closed candles ----------------------------------------------------------------------
    async def announce_closed(
        self,
        event: CandleClosed,
        *,
        tier: int | None = None,
        user_ids: Sequence[int] | None = None,
        legacy_user_ids: Sequence[int] = (),
    ) -> bool:
        """Store and announce one closed candle; False when that bucket was already stored.

        `tier` and `user_ids` default to the event's own; when given, the announced event
        carries them. `legacy_user_ids` also publish on the legacy user-scoped channels
        (compatibility mode).
        """
        if tier is not None or user_ids is not None:
            event = msgspec.structs.replace(
                event,
                tier=event.tier if tier is None else tier,
                user_ids=event.user_ids if user_ids is None else tuple(user_ids),
            )
        return await self.announce_closed_many([event], legacy_user_ids=legacy_user_ids) == 1

    async def announce_closed_many(
        self, events: Iterable[CandleClosed], *, legacy_user_ids: Sequence[int] = ()
    ) -> int:
        """`announce_closed` for many events (each with its own tier and user ids) in one round
        trip; returns how many were newly announced. Events are applied in the order given."""
        batch = list(events)
        if not batch:
            return 0
        chunks = [batch[i : i + _SCRIPT_BATCH] for i in range(0, len(batch), _SCRIPT_BATCH)]
        legacy = tuple(legacy_user_ids)
        replies = await execute_packed(self._redis, (self._packed(c, legacy) for c in chunks))
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return sum(int(r) for r in replies)

    def pack_announce(
        self, events: Sequence[CandleClosed], *, legacy_user_ids: Sequence[int] = ()
    ) -> list[bytes]:
        """The calls `announce_closed_many(events)` would send, without sending them: what the
        ingestor's keep-warm rehearsal builds (`livermore_common.warm`)."""
        legacy = tuple(legacy_user_ids)
        return [
            self._packed(events[i : i + _SCRIPT_BATCH], legacy)
            for i in range(0, len(events), _SCRIPT_BATCH)
        ]

    def candle_keys(self, events: Sequence[CandleClosed]) -> list[str]:
        """The shared candle sets `events` are stored in (Tier 2 overflow keys left out)."""
        keys: list[str] = []
        for e in events:
            if e.tier != TIER_USER:
                series = (e.exchange_id, e.symbol, e.timeframe)
                keys.append((self._announce_names.get(series) or self._announce_name(series))[0])
        return keys

    def writer(self, *, legacy_user_ids: Sequence[int] = ()) -> ClosedWriter:
        """A pipelined `announce_closed_many` on a connection of its own (see `ClosedWriter`)."""
        return ClosedWriter(self, tuple(legacy_user_ids))

    def _packed(self, events: Sequence[CandleClosed], legacy_user_ids: tuple[int, ...]) -> bytes:
        """One EVAL of the announce script for `events`, in the Redis protocol."""
        key_index: dict[str, int] = {self._keys.candle_closed_stream: 1}
        channels_per_candle = 1 + len(legacy_user_ids)
        legacy: dict[tuple[int, str, str], bytes] = {}
        parts: list[bytes] = []
        count = 0
        for event in events:
            series = (event.exchange_id, event.symbol, event.timeframe)
            key, channels = self._announce_names.get(series) or self._announce_name(series)
            if legacy_user_ids:
                channels += legacy.get(series) or legacy.setdefault(
                    series, self._legacy_channel_args(series, legacy_user_ids)
                )
            member, payload = candle_member(event), messages.encode(event)
            score = b"%d" % event.timestamp
            if event.tier == TIER_USER:
                indexes = [
                    key_index.setdefault(k, len(key_index) + 1) for k in self.candle_sets(event)
                ]
                target = b"%d" % -len(indexes)
                channels += b"".join(_bulk(b"%d" % i) for i in indexes)
                count += len(indexes)
            else:
                target = b"%d" % (
                    key_index.get(key) or key_index.setdefault(key, len(key_index) + 1)
                )
            # The hot part: the four fixed arguments of a candle in one format.
            parts.append(
                b"$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n%b"
                % (
                    len(target),
                    target,
                    len(score),
                    score,
                    len(member),
                    member,
                    len(payload),
                    payload,
                    channels,
                )
            )
        count += len(events) * (4 + channels_per_candle)
        ttl_ms = self.user_ttl_seconds * 1000
        head: list[bytes | str | int] = [len(key_index), *key_index]
        head += [self.max_candles, self._stream_maxlen, ttl_ms, channels_per_candle]
        return b"*%d\r\n%b%b%b" % (
            2 + len(head) + count,
            _EVAL_HEAD,
            pack_bulk(head),
            b"".join(parts),
        )

    def _announce_name(self, series: tuple[int, str, str]) -> tuple[str, bytes]:
        if len(self._announce_names) >= _NAME_CACHE_LIMIT:
            self._announce_names.clear()
        key, channel = self._series(*series)
        names = self._announce_names[series] = (key, _bulk(channel.encode()))
        return names

    def _legacy_channel_args(
        self, series: tuple[int, str, str], legacy_user_ids: tuple[int, ...]
    ) -> bytes:
        return b"".join(
            _bulk(self._keys.legacy_candle_close_channel(u, *series).encode())
            for u in legacy_user_ids
        )

    async def read_candles(
        self,
        exchange_id: int,
        symbol: str,
        timeframe: str,
        *,
        tier: int = TIER_SHARED,
        user_id: int | None = None,
        limit: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        legacy_user_id: int | None = None,
    ) -> list[Candle]:
        """Closed candles with start_ms <= timestamp <= end_ms, ascending (the newest `limit`).

        Tier 1 with `legacy_user_id`: an empty exchange-scoped key falls back to the previous
        release's user-scoped key `candles:{user}:{ex}:{sym}:{tf}` (DATA-04).
        """
        key = self._candle_key(exchange_id, symbol, timeframe, tier, user_id)
        candles = await self._range(key, limit, start_ms, end_ms)
        if not candles and legacy_user_id is not None and tier == TIER_SHARED:
            legacy = self._keys.legacy_candle_key(legacy_user_id, exchange_id, symbol, timeframe)
            candles = await self._range(legacy, limit, start_ms, end_ms)
        return candles

    async def read_legacy_candles(
        self,
        user_id: int,
        exchange_id: int,
        symbol: str,
        timeframe: str,
        *,
        limit: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> list[Candle]:
        """Candles the previous release stored under `candles:{user}:{ex}:{sym}:{tf}`."""
        legacy = self._keys.legacy_candle_key(user_id, exchange_id, symbol, timeframe)
        return await self._range(legacy, limit, start_ms, end_ms)

    async def _range(
        self, key: str, limit: int | None, start_ms: int | None, end_ms: int | None
    ) -> list[Candle]:
        low = "-inf" if start_ms is None else start_ms
        high = "+inf" if end_ms is None else end_ms
        if limit is None:
            raw = await self._redis.zrangebyscore(key, low, high)
        elif limit <= 0:
            return []
        else:
            raw = await self._redis.zrevrangebyscore(key, high, low, start=0, num=limit)
            raw.reverse()
        return _decode_candles(raw) if raw else []

    async def latest_timestamp(
        self,
        exchange_id: int,
        symbol: str,
        timeframe: str,
        *,
        tier: int = TIER_SHARED,
        user_id: int | None = None,
        legacy_user_id: int | None = None,
    ) -> int | None:
        """Bucket start of the newest stored candle (with the same dual read), or None."""
        for key in self._read_keys(exchange_id, symbol, timeframe, tier, user_id, legacy_user_id):
            newest = await self._redis.zrange(key, -1, -1, withscores=True)
            if newest:
                return int(newest[0][1])
        return None

    async def count(
        self,
        exchange_id: int,
        symbol: str,
        timeframe: str,
        *,
        tier: int = TIER_SHARED,
        user_id: int | None = None,
        legacy_user_id: int | None = None,
    ) -> int:
        """How many candles are stored (with the same dual read)."""
        for key in self._read_keys(exchange_id, symbol, timeframe, tier, user_id, legacy_user_id):
            n = int(await self._redis.zcard(key))
            if n:
                return n
        return 0

    def _read_keys(
        self,
        exchange_id: int,
        symbol: str,
        timeframe: str,
        tier: int,
        user_id: int | None,
        legacy_user_id: int | None,
    ) -> list[str]:
        keys = [self._candle_key(exchange_id, symbol, timeframe, tier, user_id)]
        if legacy_user_id is not None and tier == TIER_SHARED:
            keys.append(
                self._keys.legacy_candle_key(legacy_user_id, exchange_id, symbol, timeframe)
            )
        return keys

    # -- indicators --------------------------------------------------------------------------
    async def write_indicator(
        self, update: IndicatorUpdate, *, tier: int = TIER_SHARED, user_ids: Sequence[int] = ()
    ) -> None:
        """Store the latest value: the shared key, or each holder's overflow key with its TTL."""
        payload = messages.encode(update)
        ex, sym, tf, kind = update.exchange_id, update.symbol, update.timeframe, update.type
        async with self._redis.pipeline(transaction=True) as pipe:
            if tier == TIER_USER:
                if not user_ids:
                    raise ValueError("a tier-2 indicator needs the user ids that hold the symbol")
                for user in user_ids:
                    key = self._keys.user_indicator_key(user, ex, sym, tf, kind)
                    pipe.set(key, payload, px=self.user_ttl_seconds * 1000)
            else:
                pipe.set(self._keys.indicator_key(ex, sym, tf, kind), payload)
            await pipe.execute()

    async def read_indicator(
        self,
        exchange_id: int,
        symbol: str,
        timeframe: str,
        type: str,
        *,
        tier: int = TIER_SHARED,
        user_id: int | None = None,
        legacy_user_id: int | None = None,
    ) -> IndicatorUpdate | None:
        """The latest value: exchange-scoped (or overflow) key, then for tier 1 the legacy key."""
        if tier == TIER_USER:
            if user_id is None:
                raise ValueError("tier 2 reads need a user_id")
            key = self._keys.user_indicator_key(user_id, exchange_id, symbol, timeframe, type)
        else:
            key = self._keys.indicator_key(exchange_id, symbol, timeframe, type)
        raw = await self._redis.get(key)
        if raw is not None:
            return messages.decode(raw, IndicatorUpdate)
        if legacy_user_id is None or tier != TIER_SHARED:
            return None
        legacy = self._keys.legacy_indicator_key(
            legacy_user_id, exchange_id, symbol, timeframe, type
        )
        raw = await self._redis.get(legacy)
        if raw is None:
            return None
        try:
            return messages.decode(raw, IndicatorUpdate)
        except msgspec.DecodeError as exc:
            # The previous release may have stored another shape: treat it as absent.
            _log.warning("legacy indicator value not readable", key=legacy, error=str(exc))
            return None


class ClosedWriter:
    """`announce_closed_many` pipelined: `send` a batch, `settle` later, on one connection.

    A batch is sent before the replies to the ones before it are read, so Redis runs one batch
    while the caller packs the next. Everything goes through one connection, so Redis applies
    the batches in the order they were sent: the order of announcements is the order of the
    batches, exactly as with awaited calls one after another. An error reply is raised by
    `settle`; on any failure or cancellation the connection is dropped (unread replies never
    reach its next user). Use as `async with cache.writer() as w:`.
    """

    def __init__(self, cache: CandleCache, legacy_user_ids: tuple[int, ...]) -> None:
        self._cache = cache
        self._legacy = legacy_user_ids
        self._sender = PackedSender(cache._redis)
        self._pending: list[int] = []  # script calls per batch in flight, oldest first

    @property
    def pending(self) -> int:
        """Batches sent whose replies are not read yet."""
        return len(self._pending)

    async def __aenter__(self) -> ClosedWriter:
        await self._sender.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # The sender drops the connection when this failed or left replies unread.
        self._pending.clear()
        await self._sender.__aexit__(exc_type, exc, tb)

    async def send(self, events: Sequence[CandleClosed]) -> None:
        """Send the calls announcing `events` (in order) without waiting for their replies."""
        if not events:
            return
        sender, cache, calls = self._sender, self._cache, 0
        for i in range(0, len(events), _SCRIPT_BATCH):
            await sender.send(cache._packed(events[i : i + _SCRIPT_BATCH], self._legacy))
            calls += 1
        self._pending.append(calls)

    async def settle(self, batches: int = 1) -> int:
        """Read the replies of the oldest `batches` batches (all: -1); how many candles they
        announced. Raises the first error reply (after reading the batch's replies)."""
        announced = 0
        count = len(self._pending) if batches < 0 else min(batches, len(self._pending))
        for _ in range(count):
            error: Exception | None = None
            for _ in range(self._pending[0]):
                reply = await self._sender.reply()
                if isinstance(reply, ResponseError):
                    error = error or reply
                else:
                    announced += int(reply)
                self._pending[0] -= 1
            self._pending.pop(0)
            if error is not None:
                raise error
        return announced
