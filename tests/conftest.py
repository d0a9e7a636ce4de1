"""Shared fixtures: real Redis and Postgres, a database and a key namespace of this run's own.

With CI=true a missing server fails the run; elsewhere integration tests skip with a reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from livermore_common.keys import KeySpace
from livermore_common.redisbus import create_redis
from tests.servers import postgres_server, redis_server

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LIVERMORE_SHARED_DIR", ROOT.parent / "shared"))
FIXTURES = SHARED / "fixtures"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
RUN_ID = uuid.uuid4().hex[:10]


def _missing(what: str) -> None:
    message = f"{what} is not reachable and could not be started"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing server is a failure)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        if url is None:
            _missing("Redis")
        assert url is not None
        yield url


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    with postgres_server() as url:
        if url is None:
            _missing("Postgres")
        assert url is not None
        yield url


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def run_id() -> str:
    return RUN_ID


@pytest.fixture
def namespace() -> str:
    """A Redis name prefix unique to this test; every name the test creates lives under it."""
    return f"lvtest:{RUN_ID}:{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def keyspace(namespace: str) -> KeySpace:
    return KeySpace(namespace)


@pytest.fixture
async def redis_client(redis_url: str, namespace: str) -> AsyncIterator[aioredis.Redis]:
    # The services' own client (its hot-path commands go over `rawredis` connections).
    client = create_redis(redis_url)
    try:
        await client.ping()
    except Exception as exc:  # a configured but dead server
        _missing(f"Redis at {redis_url} ({exc})")
    yield client
    # Remove only what this test created, by its namespace; never FLUSHALL.
    async for key in client.scan_iter(match=f"{namespace}*", count=1000):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
async def database_url(pg_admin_url: str) -> AsyncIterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = f"livermore_test_{RUN_ID}_{uuid.uuid4().hex[:6]}"
    try:
        admin = await asyncpg.connect(pg_admin_url)
    except Exception as exc:
        _missing(f"Postgres at {pg_admin_url} ({exc})")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield _with_database(pg_admin_url, name)
    admin = await asyncpg.connect(pg_admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"shared fixtures not found at {FIXTURES} (set LIVERMORE_SHARED_DIR)")
    return FIXTURES
