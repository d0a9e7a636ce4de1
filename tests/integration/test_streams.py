"""Consumer groups on real Redis: batches, acks, reclaim, poison isolation, dead letters, drain."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec
import pytest
import redis.asyncio as aioredis

from livermore_common import streams
from livermore_common.keys import KeySpace
from livermore_common.streams import StreamConsumer, StreamEntry
from tests.helpers import eventually

pytestmark = pytest.mark.integration


class Recorder:
    """A handler that records payloads and fails on chosen ones."""

    def __init__(self, poison: set[bytes] = frozenset(), undecodable: set[bytes] = frozenset()):
        self.seen: list[bytes] = []
        self.batches: list[int] = []
        self.calls: dict[bytes, int] = {}
        self.poison = poison
        self.undecodable = undecodable

    async def __call__(self, entries: Sequence[StreamEntry]) -> None:
        self.batches.append(len(entries))
        for entry in entries:
            self.calls[entry.data] = self.calls.get(entry.data, 0) + 1
            if entry.data in self.undecodable:
                msgspec.json.decode(b"{not json")
            if entry.data in self.poison:
                raise RuntimeError(f"cannot handle {entry.data!r}")
        self.seen.extend(e.data for e in entries)


async def _pending(redis: aioredis.Redis, stream: str, group: str) -> int:
    info = await redis.xpending(stream, group)
    return int(info["pending"])


async def _run_until(consumer: StreamConsumer, condition) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await eventually(condition, timeout=10)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_xadd_and_batches_are_acked(redis_client: aioredis.Redis, keyspace: KeySpace) -> None:
    stream = keyspace.candle_closed_stream
    payloads = [f'{{"n":{i}}}'.encode() for i in range(1200)]
    async with redis_client.pipeline(transaction=False) as pipe:
        for p in payloads:
            pipe.xadd(stream, {"data": p})
        await pipe.execute()
    first_id = await streams.xadd(redis_client, stream, b'{"n":"last"}', maxlen=10_000)
    assert "-" in first_id
    handler = Recorder()
    async with StreamConsumer(redis_client, stream, "g", "c1", handler, batch_size=500) as consumer:
        await _run_until(consumer, lambda: len(handler.seen) == 1201)
    assert handler.seen[:1200] == payloads
    assert max(handler.batches) == 500  # batched, not entry by entry
    assert consumer.stats.processed == 1201
    assert await _pending(redis_client, stream, "g") == 0


async def test_xadd_trims_approximately(redis_client: aioredis.Redis, keyspace: KeySpace) -> None:
    stream = keyspace.alert_stream
    for i in range(3000):
        await streams.xadd(redis_client, stream, b"x%d" % i, maxlen=100)
    assert await redis_client.xlen(stream) < 3000


async def test_ensure_group_is_idempotent_and_only_busygroup_is_benign(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    stream = keyspace.indicator_stream
    await streams.ensure_group(redis_client, stream, "g")
    await streams.ensure_group(redis_client, stream, "g")
    groups = await redis_client.xinfo_groups(stream)
    assert [g["name"] for g in groups] == [b"g"]
    wrong_type = f"{keyspace.namespace}not-a-stream"
    await redis_client.set(wrong_type, "x")
    with pytest.raises(aioredis.ResponseError):
        await streams.ensure_group(redis_client, wrong_type, "g")


async def test_poison_entry_is_isolated_and_dead_lettered_after_max_deliveries(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    stream = keyspace.candle_closed_stream
    ids = [await streams.xadd(redis_client, stream, b"m%d" % i) for i in range(10)]
    handler = Recorder(poison={b"m4"})
    consumer = StreamConsumer(
        redis_client, stream, "g", "c1", handler, claim_idle_ms=50, max_deliveries=3, block_ms=20
    )
    dead = keyspace.dead_letter_stream(stream)
    await _run_until(consumer, lambda: redis_client.xlen(dead))
    assert sorted(handler.seen) == sorted(b"m%d" % i for i in range(10) if i != 4)
    assert handler.calls[b"m4"] == 4  # batch + isolated attempt on delivery 1, then 2 and 3
    (_, fields), *rest = await redis_client.xrange(dead)
    assert rest == []
    assert fields[b"data"] == b"m4"
    assert fields[b"stream"] == stream.encode()
    assert fields[b"id"] == ids[4].encode()
    assert fields[b"deliveries"] == b"3"
    assert b"cannot handle" in fields[b"reason"]
    assert consumer.stats.dead_lettered == 1
    assert consumer.stats.processed == 9
    assert consumer.stats.retried >= 10
    assert await _pending(redis_client, stream, "g") == 0


async def test_undecodable_entries_are_dead_lettered_at_once(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    stream = keyspace.indicator_stream
    await streams.xadd(redis_client, stream, b"good")
    await streams.xadd(redis_client, stream, b"garbage")
    await redis_client.xadd(stream, {"other": "field"})
    handler = Recorder(undecodable={b"garbage"})
    consumer = StreamConsumer(redis_client, stream, "g", "c1", handler, block_ms=20)
    dead = keyspace.dead_letter_stream(stream)
    await _run_until(consumer, lambda: consumer.stats.dead_lettered == 2)
    reasons = {f[b"data"]: f[b"reason"] for _, f in await redis_client.xrange(dead)}
    assert reasons[b"garbage"].startswith(b"DecodeError")
    assert b"no 'data' field" in reasons[b'{"other":"field"}']
    assert handler.calls[b"garbage"] == 2  # once in the batch, once alone; never redelivered
    assert handler.seen == [b"good"]
    assert await _pending(redis_client, stream, "g") == 0


async def test_entries_of_a_dead_consumer_are_reclaimed(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    stream = keyspace.candle_closed_stream
    await streams.ensure_group(redis_client, stream, "g")
    for i in range(5):
        await streams.xadd(redis_client, stream, b"e%d" % i)
    # A consumer that read and then died before acking.
    await redis_client.xreadgroup("g", "dead", {stream: ">"}, count=3)
    handler = Recorder()
    consumer = StreamConsumer(redis_client, stream, "g", "alive", handler, claim_idle_ms=30)
    deliveries: dict[bytes, int] = {}

    async def recording(entries: Sequence[StreamEntry]) -> None:
        deliveries.update({e.data: e.deliveries for e in entries})
        await handler(entries)

    consumer._handler = recording
    await _run_until(consumer, lambda: len(handler.seen) == 5)
    assert sorted(handler.seen) == [b"e%d" % i for i in range(5)]
    assert deliveries == {b"e0": 2, b"e1": 2, b"e2": 2, b"e3": 1, b"e4": 1}
    assert consumer.stats.reclaimed == 3
    assert await _pending(redis_client, stream, "g") == 0


async def test_trimmed_pending_entries_are_reported_and_dropped(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    stream = keyspace.candle_closed_stream
    await streams.ensure_group(redis_client, stream, "g")
    for i in range(4):
        await streams.xadd(redis_client, stream, b"t%d" % i)
    await redis_client.xreadgroup("g", "dead", {stream: ">"}, count=4)
    await redis_client.xtrim(stream, maxlen=0, approximate=False)
    handler = Recorder()
    consumer = StreamConsumer(redis_client, stream, "g", "alive", handler, claim_idle_ms=10)
    await _run_until(consumer, lambda: consumer.stats.deleted == 4)
    assert handler.seen == []
    assert await _pending(redis_client, stream, "g") == 0


async def test_stop_finishes_the_batch_in_hand_and_acks_it(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    stream = keyspace.alert_stream
    for i in range(20):
        await streams.xadd(redis_client, stream, b"s%d" % i)
    stop = asyncio.Event()
    entered = asyncio.Event()
    release = asyncio.Event()
    handled: list[bytes] = []

    async def slow(entries: Sequence[StreamEntry]) -> None:
        entered.set()
        await release.wait()
        handled.extend(e.data for e in entries)

    consumer = StreamConsumer(redis_client, stream, "g", "c1", slow, batch_size=10)
    task = asyncio.create_task(consumer.run(stop))
    await asyncio.wait_for(entered.wait(), 5)
    stop.set()
    release.set()
    await asyncio.wait_for(task, 5)
    assert handled == [b"s%d" % i for i in range(10)]  # the batch in hand, and no new one
    info = await redis_client.xinfo_groups(stream)
    assert info[0]["pending"] == 0
    assert info[0]["lag"] == 10  # the rest is left for the next run or another consumer


async def test_handler_cancellation_propagates_and_leaves_entries_pending(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    stream = keyspace.alert_stream
    await streams.xadd(redis_client, stream, b"x")
    entered = asyncio.Event()

    async def hang(entries: Sequence[StreamEntry]) -> None:
        entered.set()
        await asyncio.Event().wait()

    consumer = StreamConsumer(redis_client, stream, "g", "c1", hang)
    task = asyncio.create_task(consumer.run(asyncio.Event()))
    await asyncio.wait_for(entered.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _pending(redis_client, stream, "g") == 1
