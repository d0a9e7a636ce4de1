"""The service runner on real Redis: SIGTERM drains and exits 0, crashes exit 1, health keys."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from livermore_common.keys import KeySpace
from livermore_common.lifecycle import ServiceContext, check_health, run_service
from tests.helpers import eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


async def _spawn(redis_url: str, namespace: str, mode: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.lifecycle_service",
        redis_url,
        namespace,
        mode,
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_sigterm_drains_and_exits_zero(
    redis_url: str, redis_client: aioredis.Redis, keyspace: KeySpace, namespace: str
) -> None:
    health = keyspace.health_key("lifetest", "one")
    proc = await _spawn(redis_url, namespace, "work")
    try:
        await eventually(lambda: redis_client.exists(health), timeout=20)
        await eventually(lambda: check_health(redis_url, keyspace, "lifetest"))
        assert await redis_client.hget(health, "status") == b"running"
        assert 0 < await redis_client.pttl(health) <= 600
        await eventually(lambda: redis_client.get(f"{namespace}work"))
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert await redis_client.get(f"{namespace}drained") == b"1"
    assert await redis_client.get(f"{namespace}resource-closed") == b"1"
    assert not await redis_client.exists(health)
    assert not await check_health(redis_url, keyspace, "lifetest")


async def test_crash_exits_one_and_logs_once(
    redis_url: str, redis_client: aioredis.Redis, keyspace: KeySpace, namespace: str
) -> None:
    proc = await _spawn(redis_url, namespace, "crash")
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 1
    assert stderr.count(b"RuntimeError: boom") == 1
    assert await redis_client.get(f"{namespace}resource-closed") == b"1"
    assert not await redis_client.exists(keyspace.health_key("lifetest", "one"))


async def test_a_body_that_ignores_stop_is_cancelled_after_grace(
    redis_url: str, redis_client: aioredis.Redis, namespace: str
) -> None:
    proc = await _spawn(redis_url, namespace, "stubborn")
    try:
        await eventually(lambda: redis_client.get(f"{namespace}work"), timeout=20)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 1
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert await redis_client.get(f"{namespace}drained") is None
    assert await redis_client.get(f"{namespace}resource-closed") == b"1"


async def test_body_that_returns_by_itself_exits_zero_in_process(
    redis_url: str, redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    seen: list[str] = []

    async def body(ctx: ServiceContext) -> None:
        ctx.status = "idle"
        await eventually(lambda: check_health(redis_url, keyspace, "inproc"))
        seen.append((await ctx.redis.hget(ctx.keys.health_key("inproc", "i1"), "status")).decode())

    code = await run_service(
        "inproc", body, redis_url=redis_url, keys=keyspace, instance_id="i1", health_interval=0.05
    )
    assert code == 0
    assert seen == ["idle"]
    assert not await redis_client.exists(keyspace.health_key("inproc", "i1"))


async def test_outer_cancellation_is_not_swallowed(redis_url: str, keyspace: KeySpace) -> None:
    started = asyncio.Event()

    async def body(ctx: ServiceContext) -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(run_service("inproc", body, redis_url=redis_url, keys=keyspace))
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_repeated_crashes_never_hang_on_a_swallowed_cancellation(
    redis_url: str,
    keyspace: KeySpace,
    redis_client: aioredis.Redis,  # removes the counter this test leaves in its namespace
) -> None:
    # The heartbeat is cancelled while redis-py (re)connects; on Python 3.11 that cancel can be
    # swallowed inside asyncio.wait_for. The runner must still finish every time.
    async def crash(ctx: ServiceContext) -> None:
        for _ in range(3):
            await ctx.redis.incr(f"{ctx.keys.namespace}n")
            await asyncio.sleep(0.001)
        raise RuntimeError("boom")

    for _ in range(30):
        run = run_service(
            "crashy", crash, redis_url=redis_url, keys=keyspace, health_interval=0.001
        )
        assert await asyncio.wait_for(run, 5) == 1


async def test_check_health_is_false_when_redis_is_unreachable(keyspace: KeySpace) -> None:
    assert await check_health("redis://127.0.0.1:1/0", keyspace, "lifetest") is False
