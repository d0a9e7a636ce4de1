"""The test run really talks to Redis and Postgres, inside its own namespace and database."""

import asyncpg
import redis.asyncio as aioredis


async def test_redis_namespace_is_cleaned(redis_client: aioredis.Redis, namespace: str) -> None:
    await redis_client.set(f"{namespace}probe", "1")
    assert await redis_client.get(f"{namespace}probe") == b"1"


async def test_postgres_database_is_private(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        name = await conn.fetchval("select current_database()")
        assert name.startswith("livermore_test_")
        assert await conn.fetchval("select count(*) from pg_tables where schemaname='public'") == 0
    finally:
        await conn.close()
