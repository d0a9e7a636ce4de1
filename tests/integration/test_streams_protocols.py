"""The consumer reads XREADGROUP replies raw (not through redis-py's parsing): the same entries,
acks and dead letters whichever protocol the client speaks (RESP2 or RESP3), and the reply shapes
redis-py produces are still understood."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest
import redis.asyncio as aioredis

from livermore_common import streams
from livermore_common.keys import KeySpace
from livermore_common.streams import StreamConsumer, StreamEntry, _stream_entries

pytestmark = pytest.mark.integration


@pytest.fixture(params=[2, 3])
async def client(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(redis_url, protocol=request.param)
    yield redis
    await redis.aclose()


async def test_entries_acks_and_dead_letters_in_either_protocol(
    client: aioredis.Redis, redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    stream = keyspace.candle_closed_stream
    await streams.ensure_group(client, stream, "g")
    await client.xadd(stream, {"data": b"a"})
    await client.xadd(stream, {"other": b"x", "data": b"b"})  # more fields: data still found
    await client.xadd(stream, {"nodata": b"y"})  # dead-lettered, not handed over
    await client.xadd(stream, {"data": b"c"})
    seen: list[tuple[str, bytes, int]] = []

    async def handler(entries: Sequence[StreamEntry]) -> None:
        seen.extend((e.id, e.data, e.deliveries) for e in entries)

    consumer = StreamConsumer(client, stream, "g", "c1", handler, block_ms=10)
    assert await consumer.step() == 3
    assert await consumer.step() == 0  # nothing new: BLOCK 10 ms, then an empty reply
    ids = [i.decode() for i, _ in await redis_client.xrange(stream)]
    assert seen == [(ids[0], b"a", 1), (ids[1], b"b", 1), (ids[3], b"c", 1)]
    assert (await redis_client.xpending(stream, "g"))["pending"] == 0
    dead = await redis_client.xrange(consumer.dead_letter_stream)
    assert [f[b"id"] for _, f in dead] == [ids[2].encode()]
    assert b"no 'data' field" in dead[0][1][b"reason"]


def test_every_reply_shape_gives_the_same_entries() -> None:
    raw = [[b"1-0", [b"data", b"a"]], [b"2-0", [b"data", b"b"]]]
    assert _stream_entries(None) == []
    assert _stream_entries([[b"s", raw]]) == raw  # RESP2
    assert _stream_entries({b"s": raw}) == raw  # RESP3
    parsed = [(b"1-0", {b"data": b"a"}), (b"2-0", {b"data": b"b"})]
    assert _stream_entries([[b"s", parsed]]) == parsed  # redis-py, RESP2
    assert _stream_entries({b"s": [parsed]}) == parsed  # redis-py, RESP3 (one more list)
    assert _stream_entries({b"s": parsed}) == parsed
