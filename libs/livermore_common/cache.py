"""The candle and indicator cache: exchange-scoped keys (tier 1), user overflow (tier 2), dual read.

Closed candles are written and announced by one Lua script per candle, so the write and its
announcement are atomic and happen once per (exchange, symbol, timeframe, bucket): a member
already stored at that score means the candle was announced before, and nothing happens (first
write wins). Readers try the exchange-scoped key first and fall back to the previous release's
user-scoped key when asked to (DATA-04).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import redis.asyncio as aioredis

from livermore_common import messages
from livermore_common.keys import TIER_SHARED, TIER_USER, KeySpace
from livermore_common.messages import Candle, CandleClosed, IndicatorUpdate
from livermore_common.streams import DEFAULT_MAXLEN

# KEYS: stream, channel, legacy channels..., then one sorted set per target (shared or per user).
# ARGV: score, member, event, max_candles, ttl_seconds, n_legacy_channels, stream_maxlen.
_ANNOUNCE = """
local score = ARGV[1]
local n_legacy = tonumber(ARGV[6])
local first_set = 3 + n_legacy
if #redis.call('ZRANGEBYSCORE', KEYS[first_set], score, score, 'LIMIT', 0, 1) > 0 then
  return 0
end
local keep = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
for i = first_set, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], score, score)
  redis.call('ZADD', KEYS[i], score, ARGV[2])
  redis.call('ZREMRANGEBYRANK', KEYS[i], 0, -(keep + 1))
  if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl) end
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[7], '*', 'data', ARGV[3])
redis.call('PUBLISH', KEYS[2], ARGV[3])
for i = 3, 2 + n_legacy do redis.call('PUBLISH', KEYS[i], ARGV[3]) end
return 1
"""


def candle_member(candle: Candle | CandleClosed) -> bytes:
    """The stored JSON of a candle: exactly timestamp, open, high, low, close, volume."""
    if isinstance(candle, CandleClosed):
        candle = candle.candle()
    return messages.encode(candle)


class CandleCache:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: KeySpace,
        *,
        max_candles: int = 1000,
        user_ttl_seconds: int = 86_400,
        stream_maxlen: int = DEFAULT_MAXLEN,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self.max_candles = max_candles
        self.user_ttl_seconds = user_ttl_seconds
        self._stream_maxlen = stream_maxlen
        self._announce = redis.register_script(_ANNOUNCE)

    # -- names -------------------------------------------------------------------------------
    def candle_sets(self, event: CandleClosed) -> list[str]:
        """The sorted sets an event is stored in: the shared key, or each holder's overflow key."""
        if event.tier == TIER_USER:
            if not event.user_ids:
                raise ValueError("a tier-2 candle needs the user ids that hold the symbol")
            return [
                self._keys.user_candle_key(u, event.exchange_id, event.symbol, event.timeframe)
                for u in event.user_ids
            ]
        return [self._keys.candle_key(event.exchange_id, event.symbol, event.timeframe)]

    def _read_key(
        self, exchange_id: int, symbol: str, timeframe: str, tier: int, user_id: int | None
    ) -> str:
        if tier == TIER_USER:
            if user_id is None:
                raise ValueError("tier 2 reads need a user_id")
            return self._keys.user_candle_key(user_id, exchange_id, symbol, timeframe)
        return self._keys.candle_key(exchange_id, symbol, timeframe)

    # -- writes ------------------------------------------------------------------------------
    async def announce_closed(
        self, event: CandleClosed, *, legacy_user_ids: Sequence[int] = ()
    ) -> bool:
        """Store and announce one closed candle; False when that bucket was already announced."""
        return await self.announce_closed_many([event], legacy_user_ids=legacy_user_ids) == 1

    async def announce_closed_many(
        self, events: Sequence[CandleClosed], *, legacy_user_ids: Sequence[int] = ()
    ) -> int:
        """Pipelined `announce_closed`; returns how many were newly announced."""
        if not events:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        stream = self._keys.candle_closed_stream
        for event in events:
            legacy = [
                self._keys.legacy_candle_close_channel(
                    u, event.exchange_id, event.symbol, event.timeframe
                )
                for u in legacy_user_ids
            ]
            channel = self._keys.candle_close_channel(
                event.exchange_id, event.symbol, event.timeframe
            )
            ttl = self.user_ttl_seconds if event.tier == TIER_USER else 0
            await self._announce(
                keys=[stream, channel, *legacy, *self.candle_sets(event)],
                args=[
                    event.timestamp,
                    candle_member(event),
                    messages.encode(event),
                    self.max_candles,
                    ttl,
                    len(legacy),
                    self._stream_maxlen,
                ],
                client=pipe,
            )
        results = await pipe.execute()
        return sum(int(r) for r in results)

    # -- reads -------------------------------------------------------------------------------
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

        With `legacy_user_id`, an empty exchange-scoped key falls back to the previous release's
        user-scoped key `candles:{user}:{ex}:{sym}:{tf}` (DATA-04).
        """
        key = self._read_key(exchange_id, symbol, timeframe, tier, user_id)
        candles = await self._range(key, limit, start_ms, end_ms)
        if not candles and legacy_user_id is not None and tier == TIER_SHARED:
            legacy = self._keys.legacy_candle_key(legacy_user_id, exchange_id, symbol, timeframe)
            candles = await self._range(legacy, limit, start_ms, end_ms)
        return candles

    async def _range(
        self, key: str, limit: int | None, start_ms: int | None, end_ms: int | None
    ) -> list[Candle]:
        low = "-inf" if start_ms is None else start_ms
        high = "+inf" if end_ms is None else end_ms
        if limit is None:
            raw = await self._redis.zrangebyscore(key, low, high)
        else:
            raw = await self._redis.zrevrangebyscore(key, high, low, start=0, num=limit)
            raw.reverse()
        return [messages.decode(m, Candle) for m in cast(list[bytes], raw)]

    async def latest_timestamp(
        self,
        exchange_id: int,
        symbol: str,
        timeframe: str,
        *,
        tier: int = TIER_SHARED,
        user_id: int | None = None,
    ) -> int | None:
        key = self._read_key(exchange_id, symbol, timeframe, tier, user_id)
        newest = await self._redis.zrange(key, -1, -1, withscores=True)
        return int(newest[0][1]) if newest else None

    async def count(
        self,
        exchange_id: int,
        symbol: str,
        timeframe: str,
        *,
        tier: int = TIER_SHARED,
        user_id: int | None = None,
    ) -> int:
        key = self._read_key(exchange_id, symbol, timeframe, tier, user_id)
        return int(await self._redis.zcard(key))

    # -- indicators --------------------------------------------------------------------------
    async def write_indicator(
        self, update: IndicatorUpdate, *, tier: int = TIER_SHARED, user_ids: Sequence[int] = ()
    ) -> None:
        payload = messages.encode(update)
        pipe = self._redis.pipeline(transaction=True)
        if tier == TIER_USER:
            for u in user_ids:
                key = self._keys.user_indicator_key(
                    u, update.exchange_id, update.symbol, update.timeframe, update.type
                )
                pipe.set(key, payload, ex=self.user_ttl_seconds)
        else:
            key = self._keys.indicator_key(
                update.exchange_id, update.symbol, update.timeframe, update.type
            )
            pipe.set(key, payload)
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
        """The latest indicator value: exchange-scoped (or overflow) key, then the legacy key."""
        if tier == TIER_USER:
            if user_id is None:
                raise ValueError("tier 2 reads need a user_id")
            key = self._keys.user_indicator_key(user_id, exchange_id, symbol, timeframe, type)
        else:
            key = self._keys.indicator_key(exchange_id, symbol, timeframe, type)
        raw = await self._redis.get(key)
        if raw is None and legacy_user_id is not None and tier == TIER_SHARED:
            legacy = self._keys.legacy_indicator_key(
                legacy_user_id, exchange_id, symbol, timeframe, type
            )
            raw = await self._redis.get(legacy)
        return None if raw is None else messages.decode(raw, IndicatorUpdate)
