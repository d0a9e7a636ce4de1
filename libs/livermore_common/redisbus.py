"""Redis connections for services: one configured asyncio client per process, from settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis

from livermore_common.config import CommonSettings
from livermore_common.keys import KeySpace


def create_redis(url: str, *, client_name: str | None = None) -> aioredis.Redis:
    """A client returning bytes (messages are JSON bytes), with keepalive and connect timeouts.

    No socket read timeout: blocking stream reads and pub/sub listeners wait longer than any
    sensible timeout. redis-py's default retry (3 attempts with jittered backoff) covers blips.
    """
    return aioredis.Redis.from_url(
        url,
        decode_responses=False,
        socket_connect_timeout=5,
        socket_keepalive=True,
        health_check_interval=30,
        client_name=client_name,
    )


@asynccontextmanager
async def connect(url: str, *, client_name: str | None = None) -> AsyncIterator[aioredis.Redis]:
    """Open a client, check that the server answers, and close it on exit."""
    client = create_redis(url, client_name=client_name)
    try:
        await client.ping()
        yield client
    finally:
        await client.aclose()


def keyspace_for(settings: CommonSettings) -> KeySpace:
    """The key space of a deployment (its optional namespace prefix)."""
    return KeySpace(settings.namespace)


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that a library swallowed; long-running loops call it every round.

    On Python 3.11, `asyncio.wait_for` (used inside redis-py's connection setup) can swallow a
    `cancel()` that lands just as the inner operation completes (CPython gh-86296). The task then
    runs on with `cancelling() > 0`, so a loop that never checks would never stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
