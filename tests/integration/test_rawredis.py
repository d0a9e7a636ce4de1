"""The hot path's direct Redis connections (`rawredis`) on a real server: replies in order, error
replies as redis-py's exceptions, the connection set-up, and no connection reused after a failure
or a cancellation (its late reply would reach the next user)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from livermore_common.rawredis import RawPool
from livermore_common.redisbus import (
    PackedSender,
    create_redis,
    execute_packed,
    pack_command,
    raw_pool,
)


async def test_the_services_client_speaks_directly_and_replies_come_in_order(
    redis_url: str, namespace: str
) -> None:
    client = create_redis(redis_url)
    try:
        assert raw_pool(client) is not None
        key = f"{namespace}raw:list"
        replies = await execute_packed(
            client,
            [
                pack_command("RPUSH", key, "a", "b", "c"),
                pack_command("LRANGE", key, 0, -1),
                pack_command("GET", f"{namespace}raw:absent"),
                pack_command("DEL", key),
            ],
        )
        assert replies == [3, [b"a", b"b", b"c"], None, 1]
    finally:
        await client.aclose()


async def test_error_replies_are_returned_as_redis_py_exceptions(redis_client) -> None:
    missing_sha = "0" * 40
    wrong, noscript, pong = await execute_packed(
        redis_client,
        [
            pack_command("INCRBY", "x", "not-a-number"),
            pack_command("EVALSHA", missing_sha, 0),
            pack_command("PING"),
        ],
    )
    assert isinstance(wrong, ResponseError) and "not an integer" in str(wrong)
    assert isinstance(noscript, NoScriptError)
    assert pong == b"PONG"


async def test_packed_sender_sends_as_it_goes_and_reads_every_reply(
    redis_client, namespace: str
) -> None:
    key = f"{namespace}raw:counter"
    async with PackedSender(redis_client) as sender:
        for _ in range(5):
            await sender.send(pack_command("INCR", key))
        assert await sender.replies() == [1, 2, 3, 4, 5]
    assert await redis_client.get(key) == b"5"


async def test_a_cancelled_command_never_hands_its_reply_to_the_next_user(
    redis_client, namespace: str
) -> None:
    raw = raw_pool(redis_client)
    assert raw is not None
    key = f"{namespace}raw:queue"
    blocked = asyncio.create_task(execute_packed(redis_client, [pack_command("BLPOP", key, 5)]))
    await asyncio.sleep(0.2)  # it is waiting in Redis
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
    # Were that connection reused, the next command could read the BLPOP's reply.
    await redis_client.rpush(key, "late")
    for _ in range(3):
        (pong,) = await execute_packed(redis_client, [pack_command("PING")])
        assert pong == b"PONG"
    # The cancelled BLPOP's connection was closed, so Redis no longer serves it: the value stays.
    await asyncio.sleep(0.1)
    assert await redis_client.lrange(key, 0, -1) == [b"late"]


async def test_a_connection_the_server_closed_is_replaced(redis_url: str) -> None:
    client = create_redis(redis_url, client_name="lvtest-raw-kill")
    try:
        (name,) = await execute_packed(client, [pack_command("CLIENT", "GETNAME")])
        assert name == b"lvtest-raw-kill"  # the set-up named it
        (me,) = await execute_packed(client, [pack_command("CLIENT", "ID")])
        await client.execute_command("CLIENT", "KILL", "ID", me)
        await asyncio.sleep(0.1)  # the close reaches the idle connection
        (again,) = await execute_packed(client, [pack_command("CLIENT", "ID")])
        assert again != me
    finally:
        await client.aclose()


async def test_the_database_in_the_url_is_selected(redis_url: str) -> None:
    base = redis_url.rsplit("/", 1)[0] if redis_url.count("/") > 2 else redis_url
    client = create_redis(f"{base}/3")
    try:
        (info,) = await execute_packed(client, [pack_command("CLIENT", "INFO")])
        assert b" db=3 " in info
    finally:
        await client.aclose()


async def test_a_closed_pool_refuses_and_its_connections_are_gone(redis_url: str) -> None:
    client = create_redis(redis_url, client_name="lvtest-raw-close")
    await execute_packed(client, [pack_command("PING")])
    raw = raw_pool(client)
    await client.aclose()
    assert raw is not None
    with pytest.raises(RedisConnectionError):
        await raw.acquire()
    probe = aioredis.Redis.from_url(redis_url)
    try:
        await asyncio.sleep(0.1)
        clients = await probe.client_list()
        assert not [c for c in clients if c.get("name") == "lvtest-raw-close"]
    finally:
        await probe.aclose()


def test_urls_it_does_not_speak_fall_back_to_redis_py() -> None:
    tls = aioredis.Redis.from_url("rediss://127.0.0.1:6380/0")
    assert RawPool.for_redis_pool(tls.connection_pool) is None
    assert raw_pool(create_redis("rediss://127.0.0.1:6380/0")) is None
    assert raw_pool(aioredis.Redis.from_url("redis://127.0.0.1:6379/0")) is None  # not ours
    unix = RawPool.for_redis_pool(create_redis("unix:///tmp/redis.sock").connection_pool)
    assert unix is not None
