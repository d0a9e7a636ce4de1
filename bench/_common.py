"""What every benchmark here shares: the machine line, a private Postgres database, and the
clean-up of a Redis namespace. Imported by the scripts (their own directory is on sys.path)."""

from __future__ import annotations

import contextlib
import os
import platform
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

from livermore_common.migrate import migrate


def machine(*, load: bool = True) -> str:
    """`machine: nproc N, <CPU model>, Python x.y.z, <OS release>[, load average ...]`."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    text = (
        f"machine: nproc {os.cpu_count()}, {model}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )
    if load:
        averages = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        text += f", load average {averages} (shared machine)"
    return text


async def delete_namespace(redis: aioredis.Redis, namespace: str) -> int:
    """UNLINK every key under `namespace` (SCAN, in batches); returns how many."""
    deleted = 0
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=f"{namespace}*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            deleted += await redis.unlink(*batch)
            batch = []
    if batch:
        deleted += await redis.unlink(*batch)
    return deleted


@contextlib.asynccontextmanager
async def private_database(admin_url: str, label: str) -> AsyncIterator[str]:
    """A database of its own on the server of `admin_url`, migrated; dropped at the end."""
    name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
    base = admin_url.rsplit("/", 1)[0]
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = f"{base}/{name}"
    try:
        await migrate(url)
        yield url
    finally:
        conn = await asyncpg.connect(f"{base}/postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
