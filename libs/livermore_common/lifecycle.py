"""The one service runner: signals, resources, health heartbeat, graceful drain and exit codes.

    main_entry / run_service
      ├─ SIGTERM, SIGINT  → ctx.stop is set (a second signal skips the rest of the grace period)
      ├─ AsyncExitStack   → Redis client, health-key cleanup, whatever the body registers
      └─ TaskGroup
           ├─ body(ctx)        the service; returns soon after ctx.stop is set
           ├─ heartbeat        health:{service}:{instance} hash, TTL 3 x interval
           └─ watchdog         after stop: grace_seconds for the body, then cancel it

Exit codes: 0 when the body returned (by itself or after stop); 1 when it raised, or had to be
cancelled because it overran the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from livermore_common.keys import KeySpace
from livermore_common.logs import get_logger
from livermore_common.redisbus import connect, raise_if_cancelled

EXIT_OK = 0
EXIT_FAILED = 1

_log = get_logger(__name__)


@dataclass(eq=False)
class ServiceContext:
    """What a service body receives. Set `status` to report e.g. "idle" in the health key."""

    name: str
    instance_id: str
    redis: aioredis.Redis
    keys: KeySpace
    stop: asyncio.Event
    exit_stack: AsyncExitStack
    log: Any
    status: str = "running"
    started_at: int = field(default_factory=lambda: int(time.time() * 1000))


Body = Callable[[ServiceContext], Awaitable[None]]


def default_instance_id() -> str:
    """host-pid, made safe for a Redis name part (no colons or spaces)."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}"


class _Health:
    """Writes the health hash every interval; a key that stops being refreshed expires."""

    def __init__(self, redis: aioredis.Redis, key: str, interval: float, ctx_started: int) -> None:
        self._redis = redis
        self.key = key
        self._interval = interval
        self._ttl_ms = max(int(interval * 3000), 1)
        self._started_at = ctx_started
        self._failing = False

    async def beat(self, status: str) -> None:
        now = int(time.time() * 1000)
        mapping: dict[str | bytes, str | int] = {
            "status": status,
            "started_at": self._started_at,
            "updated_at": now,
            "pid": os.getpid(),
            "interval_ms": int(self._interval * 1000),
        }
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(self.key, mapping=mapping)  # type: ignore[arg-type]
                pipe.pexpire(self.key, self._ttl_ms)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            # A Redis blip must not kill the service; the key expiring is the right signal.
            if not self._failing:
                _log.warning("health heartbeat failed", key=self.key, error=repr(exc))
            self._failing = True
        else:
            self._failing = False

    async def run(self, ctx: ServiceContext) -> None:
        while True:
            await self.beat("stopping" if ctx.stop.is_set() else ctx.status)
            raise_if_cancelled()
            await asyncio.sleep(self._interval)

    async def clear(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(self.key)


@contextlib.contextmanager
def _signals(stop: asyncio.Event, force: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        (force if stop.is_set() else stop).set()

    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread or no signal support: the caller sets ctx.stop itself
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


@dataclass(slots=True)
class _Outcome:
    overran: bool = False


async def _watchdog(
    ctx: ServiceContext,
    body_task: asyncio.Task[None],
    force: asyncio.Event,
    grace: float,
    outcome: _Outcome,
) -> None:
    """After stop, give the body `grace` seconds (less on a second signal), then cancel it."""
    await ctx.stop.wait()
    ctx.log.info("stopping", grace_seconds=grace)
    forced = asyncio.ensure_future(force.wait())
    try:
        await asyncio.wait({forced, body_task}, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
    finally:
        forced.cancel()
    if body_task.done():
        return
    outcome.overran = True
    ctx.log.error("service did not drain within its grace period; cancelling it")
    while not body_task.done():
        # Cancel again while it runs on: a library may have swallowed the previous request.
        body_task.cancel()
        await asyncio.wait({body_task}, timeout=1.0)


async def _call(body: Body, ctx: ServiceContext) -> None:
    await body(ctx)


async def _supervise(ctx: ServiceContext, body: Body, health: _Health, grace: float) -> int:
    force = asyncio.Event()
    outcome = _Outcome()
    with _signals(ctx.stop, force):
        async with asyncio.TaskGroup() as tg:
            body_task = tg.create_task(_call(body, ctx), name=f"{ctx.name}-body")
            beat_task = tg.create_task(health.run(ctx), name=f"{ctx.name}-health")
            watch_task = tg.create_task(_watchdog(ctx, body_task, force, grace, outcome))

            def body_done(_: asyncio.Task[None]) -> None:
                beat_task.cancel()
                watch_task.cancel()

            body_task.add_done_callback(body_done)
    return EXIT_FAILED if outcome.overran else EXIT_OK


async def run_service(
    name: str,
    body: Body,
    *,
    redis_url: str,
    keys: KeySpace,
    instance_id: str | None = None,
    grace_seconds: float = 10,
    health_interval: float = 2,
) -> int:
    """Run `body` as service `name` until it returns or a signal stops it; returns the exit code."""
    instance = instance_id or default_instance_id()
    log = get_logger("service", service=name, instance=instance)
    try:
        async with AsyncExitStack() as stack:
            redis = await stack.enter_async_context(connect(redis_url, client_name=name))
            ctx = ServiceContext(name, instance, redis, keys, asyncio.Event(), stack, log)
            health = _Health(
                redis, keys.health_key(name, instance), health_interval, ctx.started_at
            )
            stack.push_async_callback(health.clear)
            log.info("service started")
            code = await _supervise(ctx, body, health, grace_seconds)
    except Exception as exc:  # the one place that catches everything: log once, exit 1
        for error in _leaves(exc):
            log.error("service failed", exc_info=error)
        return EXIT_FAILED
    log.info("service stopped", exit_code=code)
    return code


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def main_entry(
    name: str,
    body: Body,
    *,
    redis_url: str,
    keys: KeySpace,
    instance_id: str | None = None,
    grace_seconds: float = 10,
    health_interval: float = 2,
) -> int:
    """Synchronous entry for `__main__` modules: `return main_entry(...)` from `main(argv)`."""
    return asyncio.run(
        run_service(
            name,
            body,
            redis_url=redis_url,
            keys=keys,
            instance_id=instance_id,
            grace_seconds=grace_seconds,
            health_interval=health_interval,
        )
    )


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


async def check_health(redis_url: str, keys: KeySpace, service: str) -> bool:
    """True if any instance of `service` has a fresh health key that is not stopping."""
    probe = keys.health_key(service, "x")
    pattern = _glob_escape(probe[:-1]) + "*"
    try:
        async with connect(redis_url) as redis:
            async for key in redis.scan_iter(match=pattern, count=500):
                status = await redis.hget(key, "status")
                ttl = await redis.pttl(key)
                if status is not None and status != b"stopping" and ttl > 0:
                    return True
    except (RedisError, OSError):
        return False  # no Redis, no health
    return False
