"""The candle cache on real Redis: exactly-once announcements, tiers, retention, dual read."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from livermore_common import messages
from livermore_common.cache import CandleCache
from livermore_common.keys import KeySpace
from livermore_common.messages import Candle, CandleClosed, IndicatorUpdate
from livermore_common.redisbus import ScriptRunner
from tests.helpers import eventually

pytestmark = pytest.mark.integration

T0 = 1_704_067_200_000
MINUTE = 60_000


def closed(i: int, *, symbol: str = "BTC-USD", close: float = 100.5, **extra: Any) -> CandleClosed:
    return CandleClosed(
        exchange_id=1,
        exchange="coinbase",
        symbol=symbol,
        timeframe="1m",
        timestamp=T0 + i * MINUTE,
        open=100.0 + i,
        high=101.25 + i,
        low=99.5 + i,
        close=close + i,
        volume=12.345,
        **extra,
    )


class Listener:
    """Collects pub/sub messages on some channels (subscription confirmed before use)."""

    def __init__(self, redis: aioredis.Redis, *channels: str) -> None:
        self._pubsub = redis.pubsub()
        self._channels = channels
        self.received: list[tuple[str, bytes]] = []

    async def __aenter__(self) -> Listener:
        await self._pubsub.subscribe(*self._channels)
        for _ in self._channels:
            while (await self._pubsub.get_message(timeout=1.0)) is None:
                pass
        return self

    async def drain(self, quiet: float = 0.2) -> list[tuple[str, bytes]]:
        while (message := await self._pubsub.get_message(timeout=quiet)) is not None:
            if message["type"] == "message":
                self.received.append((message["channel"].decode(), message["data"]))
        return self.received

    async def __aexit__(self, *exc: object) -> None:
        await self._pubsub.aclose()


async def _stream_events(redis: aioredis.Redis, keys: KeySpace) -> list[CandleClosed]:
    entries = await redis.xrange(keys.candle_closed_stream)
    return [messages.decode(fields[b"data"], CandleClosed) for _, fields in entries]


async def test_a_closed_candle_is_stored_and_announced_exactly_once(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    cache = CandleCache(redis_client, keyspace)
    event = closed(0)
    channel = keyspace.candle_close_channel(1, "BTC-USD", "1m")
    async with Listener(redis_client, channel) as listener:
        assert await cache.announce_closed(event) is True
        assert await cache.announce_closed(event) is False
        again = msgspec.structs.replace(event, close=999.0)  # a revised copy of the same bucket
        assert await cache.announce_closed(again) is False
        received = await listener.drain()
    key = keyspace.candle_key(1, "BTC-USD", "1m")
    stored = await redis_client.zrange(key, 0, -1, withscores=True)
    assert len(stored) == 1
    member, score = stored[0]
    assert score == event.timestamp
    assert msgspec.json.decode(member) == {
        "timestamp": event.timestamp,
        "open": 100.0,
        "high": 101.25,
        "low": 99.5,
        "close": 100.5,
        "volume": 12.345,
    }
    assert await redis_client.ttl(key) == -1  # tier 1 has no TTL
    assert await _stream_events(redis_client, keyspace) == [event]
    assert [(c, messages.decode(d, CandleClosed)) for c, d in received] == [(channel, event)]


async def test_older_buckets_may_be_inserted_but_not_beyond_the_retained_window(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    cache = CandleCache(redis_client, keyspace, max_candles=5)
    assert await cache.announce_closed_many([closed(i) for i in range(10, 17)]) == 7
    assert [c.timestamp for c in await cache.read_candles(1, "BTC-USD", "1m")] == [
        T0 + i * MINUTE for i in range(12, 17)
    ]
    # a backfilled gap inside the window is stored and announced (no out-of-order guard)
    await redis_client.zremrangebyscore(
        keyspace.candle_key(1, "BTC-USD", "1m"), *[T0 + 14 * MINUTE] * 2
    )
    assert await cache.announce_closed(closed(14)) is True
    # older than the newest five: it would be trimmed at once, so it is neither stored nor news
    assert await cache.announce_closed(closed(3)) is False
    assert await cache.count(1, "BTC-USD", "1m") == 5
    assert len(await _stream_events(redis_client, keyspace)) == 8


async def test_batches_dedupe_within_and_across_calls(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    cache = CandleCache(redis_client, keyspace)
    events = [closed(i, symbol=s) for i in range(300) for s in ("A-USD", "B-USD", "C-USD")]
    assert await cache.announce_closed_many(events + events[:50]) == 900
    assert await cache.announce_closed_many(events[::-1]) == 0
    announced = await _stream_events(redis_client, keyspace)
    assert announced == events  # in the order given, once each
    for symbol in ("A-USD", "B-USD", "C-USD"):
        assert await cache.count(1, symbol, "1m") == 300


async def test_replicas_racing_on_the_same_candles_announce_each_once(
    redis_url: str, redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(3)]
    try:
        caches = [CandleCache(c, keyspace) for c in clients]
        events = [closed(i) for i in range(400)]
        counts = await asyncio.gather(*(c.announce_closed_many(events) for c in caches))
    finally:
        for client in clients:
            await client.aclose()
    assert sum(counts) == 400
    assert len(await _stream_events(redis_client, keyspace)) == 400


async def test_tier_two_goes_to_each_holders_overflow_key_with_a_ttl(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    cache = CandleCache(redis_client, keyspace, user_ttl_seconds=3600)
    event = closed(0, symbol="DOGE-USD")
    assert await cache.announce_closed(event, tier=2, user_ids=[7, 8]) is True
    assert await cache.announce_closed(event, tier=2, user_ids=[7, 8]) is False
    for user in (7, 8):
        key = keyspace.user_candle_key(user, 1, "DOGE-USD", "1m")
        assert await redis_client.zcard(key) == 1
        assert 3500 < await redis_client.ttl(key) <= 3600
    assert not await redis_client.exists(keyspace.candle_key(1, "DOGE-USD", "1m"))
    (announced,) = await _stream_events(redis_client, keyspace)
    assert (announced.tier, announced.user_ids) == (2, (7, 8))
    read = await cache.read_candles(1, "DOGE-USD", "1m", tier=2, user_id=8)
    assert read == [event.candle()]
    with pytest.raises(ValueError):
        await cache.read_candles(1, "DOGE-USD", "1m", tier=2)


async def test_compatibility_mode_also_publishes_the_legacy_channel(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    cache = CandleCache(redis_client, keyspace)
    new = keyspace.candle_close_channel(1, "BTC-USD", "1m")
    legacy = keyspace.legacy_candle_close_channel(5, 1, "BTC-USD", "1m")
    async with Listener(redis_client, new, legacy) as listener:
        await cache.announce_closed(closed(0), legacy_user_ids=[5])
        await cache.announce_closed(closed(0), legacy_user_ids=[5])
        received = await listener.drain()
    assert sorted(c for c, _ in received) == sorted([new, legacy])


@pytest.fixture
async def private_redis() -> AsyncIterator[aioredis.Redis]:
    """A throwaway redis-server of this test's own (for what must not be done to a shared one)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server binary for a private server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        for _ in range(200):
            with contextlib.suppress(aioredis.ConnectionError):
                if await client.ping():
                    break
            await asyncio.sleep(0.05)
        yield client
    finally:
        await client.aclose()
        proc.terminate()
        proc.wait(10)


async def test_a_server_that_lost_its_scripts_still_runs_every_call(
    private_redis: aioredis.Redis,
) -> None:
    keyspace = KeySpace("t:")
    cache = CandleCache(private_redis, keyspace)
    assert await cache.announce_closed(closed(0)) is True
    await private_redis.script_flush()  # as after a restart: the server knows no script
    assert await cache.announce_closed_many([closed(0), closed(1)]) == 1
    assert await cache.count(1, "BTC-USD", "1m") == 2
    assert [e.timestamp for e in await _stream_events(private_redis, keyspace)] == [
        T0,
        T0 + MINUTE,
    ]


async def test_a_script_runner_reloads_a_script_the_server_lost(
    private_redis: aioredis.Redis,
) -> None:
    scripts = ScriptRunner(private_redis)
    script = "return {KEYS[1], ARGV[1]}"
    assert await scripts.run(script, [[1, "k", "a"]]) == [[b"k", b"a"]]
    await private_redis.script_flush()  # as after a restart: the server knows no script
    assert await scripts.run(script, [[1, "k", "b"], [1, "j", "c"]]) == [
        [b"k", b"b"],
        [b"j", b"c"],
    ]
    with pytest.raises(ResponseError):  # a failing call still raises
        await scripts.run("return redis.call('INCR')", [[0]])


async def test_a_mixed_batch_keeps_its_order_and_each_candles_targets_and_channels(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    cache = CandleCache(redis_client, keyspace, max_candles=3, user_ttl_seconds=600)
    shared = [closed(i) for i in range(5)]
    overflow = [closed(i, symbol="DOGE-USD", tier=2, user_ids=(7, 8)) for i in range(5)]
    # user 8 already holds bucket 2 of DOGE-USD (another copy): first write wins there, but
    # user 7 lacks it, so that candle is stored for 7 and still announced once
    held = keyspace.user_candle_key(8, 1, "DOGE-USD", "1m")
    await redis_client.zadd(held, {b'{"held":true}': T0 + 2 * MINUTE})
    events = [e for pair in zip(shared, overflow, strict=True) for e in pair]
    channels = [
        keyspace.candle_close_channel(1, "BTC-USD", "1m"),
        keyspace.candle_close_channel(1, "DOGE-USD", "1m"),
        keyspace.legacy_candle_close_channel(5, 1, "BTC-USD", "1m"),
        keyspace.legacy_candle_close_channel(5, 1, "DOGE-USD", "1m"),
    ]
    async with Listener(redis_client, *channels) as listener:
        assert await cache.announce_closed_many(events, legacy_user_ids=[5]) == 10
        assert await cache.announce_closed_many(events, legacy_user_ids=[5]) == 0
        received = await listener.drain()
    assert await _stream_events(redis_client, keyspace) == events
    assert sorted(c for c, _ in received) == sorted(channels[i] for i in (0, 2) * 5 + (1, 3) * 5)
    assert [c.timestamp for c in await cache.read_candles(1, "BTC-USD", "1m")] == [
        T0 + i * MINUTE for i in (2, 3, 4)
    ]
    for user in (7, 8):
        key = keyspace.user_candle_key(user, 1, "DOGE-USD", "1m")
        stored = await redis_client.zrange(key, 0, -1, withscores=True)
        assert [int(score) for _, score in stored] == [T0 + i * MINUTE for i in (2, 3, 4)]
        assert 590 < await redis_client.ttl(key) <= 600
    assert (await redis_client.zrange(held, 0, 0))[0] == b'{"held":true}'
    assert not await redis_client.exists(keyspace.candle_key(1, "DOGE-USD", "1m"))


async def test_the_stream_is_trimmed_to_about_its_maxlen(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    cache = CandleCache(redis_client, keyspace, stream_maxlen=100)
    assert await cache.announce_closed_many([closed(i) for i in range(1000)]) == 1000
    length = await redis_client.xlen(keyspace.candle_closed_stream)
    # approximate trimming (MAXLEN ~) removes whole stream nodes only
    assert 100 <= length < 1000


async def test_reads_are_ascending_bounded_and_fall_back_to_legacy_keys(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    cache = CandleCache(redis_client, keyspace)
    await cache.announce_closed_many([closed(i) for i in range(20)])
    ts = [c.timestamp for c in await cache.read_candles(1, "BTC-USD", "1m", limit=3)]
    assert ts == [T0 + i * MINUTE for i in (17, 18, 19)]
    ranged = await cache.read_candles(
        1, "BTC-USD", "1m", start_ms=T0 + 5 * MINUTE, end_ms=T0 + 9 * MINUTE, limit=2
    )
    assert [c.timestamp for c in ranged] == [T0 + 8 * MINUTE, T0 + 9 * MINUTE]
    assert await cache.latest_timestamp(1, "BTC-USD", "1m") == T0 + 19 * MINUTE

    # a series only the previous release wrote, under its user-scoped key
    legacy_key = keyspace.legacy_candle_key(5, 1, "ETH-USD", "5m")
    old = Candle(timestamp=T0, open=1.0, high=2.0, low=0.5, close=1.5, volume=3.0)
    await redis_client.zadd(legacy_key, {messages.encode(old): T0})
    assert await cache.read_candles(1, "ETH-USD", "5m") == []
    assert await cache.read_candles(1, "ETH-USD", "5m", legacy_user_id=5) == [old]
    assert await cache.latest_timestamp(1, "ETH-USD", "5m", legacy_user_id=5) == T0
    assert await cache.count(1, "ETH-USD", "5m", legacy_user_id=5) == 1
    assert await cache.count(1, "ETH-USD", "5m") == 0
    # the exchange-scoped key wins as soon as it has data
    await redis_client.zadd(keyspace.legacy_candle_key(5, 1, "BTC-USD", "1m"), {b"{}": T0})
    assert len(await cache.read_candles(1, "BTC-USD", "1m", legacy_user_id=5)) == 20


def _indicator(ts: int, **extra: Any) -> IndicatorUpdate:
    return IndicatorUpdate(
        exchange_id=1,
        exchange="coinbase",
        symbol="BTC-USD",
        timeframe="1m",
        type="macd-v",
        timestamp=ts,
        macd_v=-83.676122,
        signal=-35.30792,
        histogram=-48.368202,
        fast_ema=104.140773,
        slow_ema=107.438569,
        atr=3.941144,
        stage="reversing",
        seeded=True,
        n_eff=26,
        gap_ratio=0.0,
        liquidity="high",
        price=104.0,
        **extra,
    )


async def test_indicator_values_by_tier_with_legacy_fallback(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    cache = CandleCache(redis_client, keyspace, user_ttl_seconds=600)
    update = _indicator(T0)
    await cache.write_indicator(update)
    assert await cache.read_indicator(1, "BTC-USD", "1m", "macd-v") == update
    await cache.write_indicator(update, tier=2, user_ids=[3])
    user_key = keyspace.user_indicator_key(3, 1, "BTC-USD", "1m", "macd-v")
    assert 590 < await redis_client.ttl(user_key) <= 600
    assert await cache.read_indicator(1, "BTC-USD", "1m", "macd-v", tier=2, user_id=3) == update

    legacy = keyspace.legacy_indicator_key(4, 1, "SOL-USD", "1h", "macd-v")
    old = msgspec.structs.replace(update, symbol="SOL-USD", timeframe="1h")
    await redis_client.set(legacy, messages.encode(old))
    assert await cache.read_indicator(1, "SOL-USD", "1h", "macd-v") is None
    assert await cache.read_indicator(1, "SOL-USD", "1h", "macd-v", legacy_user_id=4) == old
    await redis_client.set(legacy, b'{"something": "else"}')  # an older shape: treated as absent
    assert await cache.read_indicator(1, "SOL-USD", "1h", "macd-v", legacy_user_id=4) is None


async def test_memory_per_stored_candle(redis_client: aioredis.Redis, keyspace: KeySpace) -> None:
    cache = CandleCache(redis_client, keyspace)
    price, events = 43_210.5, []
    for i in range(1000):
        price *= 1.0007 if i % 3 else 0.9991
        o, c = round(price, 2), round(price * 1.0003, 2)
        events.append(
            msgspec.structs.replace(
                closed(i),
                open=o,
                high=round(c * 1.001, 2),
                low=round(o * 0.999, 2),
                close=c,
                volume=round(0.5 + (i % 17) * 1.37, 8),
            )
        )
    await cache.announce_closed_many(events)
    key = keyspace.candle_key(1, "BTC-USD", "1m")
    usage = await redis_client.memory_usage(key, samples=0)
    encoding = (await redis_client.object("encoding", key)).decode()
    member = (await redis_client.zrange(key, -1, -1))[0]
    per_candle = usage / 1000
    print(f"\nRedis memory: {per_candle:.1f} B/candle ({encoding}); member {len(member)} B")
    assert await eventually(lambda: cache.count(1, "BTC-USD", "1m")) == 1000
    assert len(member) < 140 and per_candle < 400  # a regression guard, not the target


async def test_the_pipelined_writer_applies_batches_in_order_and_raises_errors(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    cache = CandleCache(redis_client, keyspace)
    batches = [[closed(i, symbol=s) for s in ("A-USD", "B-USD")] for i in range(5)]
    async with cache.writer() as writer:
        for batch in batches:
            await writer.send(batch)  # nothing read yet: all five in flight
        assert writer.pending == 5
        assert await writer.settle(2) == 4
        await writer.send(batches[0])  # a repeat: first write wins
        assert await writer.settle(-1) == 6
        assert writer.pending == 0
    assert await _stream_events(redis_client, keyspace) == [e for b in batches for e in b]

    await redis_client.set(keyspace.candle_key(1, "C-USD", "1m"), b"not a sorted set")
    with pytest.raises(ResponseError):
        async with cache.writer() as writer:
            await writer.send([closed(9, symbol="C-USD")])
            await writer.send([closed(9, symbol="D-USD")])  # still applied: sent before
            await writer.settle(-1)
    assert await cache.count(1, "D-USD", "1m") == 1
