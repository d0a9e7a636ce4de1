"""Fixtures for the gateway's integration tests: a migrated database and a running gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis

from livermore_common.keys import KeySpace
from livermore_common.migrate import migrate
from services.gateway.config import GatewaySettings

from .support import FakeIngestor, auth_headers, gateway_settings, running_gateway


@pytest.fixture
async def migrated_db(database_url: str) -> str:
    """The test's private database with every migration applied (exchanges seeded)."""
    await migrate(database_url)
    return database_url


@pytest.fixture
def settings(redis_url: str, migrated_db: str, namespace: str) -> GatewaySettings:
    return gateway_settings(redis_url=redis_url, database_url=migrated_db, namespace=namespace)


@pytest.fixture
async def gateway(settings: GatewaySettings, redis_client: aioredis.Redis) -> AsyncIterator[str]:
    async with running_gateway(settings) as base_url:
        yield base_url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture
async def authed() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        headers=auth_headers(), timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        yield session


@pytest.fixture
async def fake_ingestor(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> AsyncIterator[FakeIngestor]:
    async with FakeIngestor(redis_client, keyspace) as fake:
        yield fake
