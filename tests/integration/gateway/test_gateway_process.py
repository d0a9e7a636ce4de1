"""`livermore gateway` as a process: serves, passes its `--check`, drains on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.helpers import eventually

from .support import TOKEN, auth_headers, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


async def _check(env: dict[str, str]) -> int:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "gateway", "--check", cwd=ROOT, env=env
    )
    return await asyncio.wait_for(proc.wait(), 30)


async def _healthy(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False


async def test_gateway_process_serves_checks_and_stops_on_sigterm(
    redis_url: str, migrated_db: str, namespace: str
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "LIVERMORE_GATEWAY_TOKEN": TOKEN,
        "LIVERMORE_GATEWAY_PORT": str(port),
        "LIVERMORE_REDIS_URL": redis_url,
        "LIVERMORE_DATABASE_URL": migrated_db,
        "LIVERMORE_NAMESPACE": namespace,
        "LIVERMORE_LOG_FORMAT": "json",
    }
    env.pop("LIVERMORE_CONTROL_SECRET", None)
    assert await _check(env) == 1  # nothing listens yet
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.gateway",
        cwd=ROOT,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        await eventually(lambda: _healthy(base + "/healthz"), timeout=30)
        assert await _check(env) == 0
        async with aiohttp.ClientSession(headers=auth_headers()) as http:
            async with http.get(base + "/api/exchanges") as resp:
                assert resp.status == 200
                assert len((await resp.json())["exchanges"]) >= 2
            events = await http.get(base + "/api/events")  # an open stream must not block stop
            assert events.status == 200
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 20) == 0
            events.release()
        _, stderr = await proc.communicate()
        assert TOKEN.encode() not in stderr
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_gateway_refuses_to_start_without_a_token(redis_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LIVERMORE_GATEWAY_TOKEN"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.gateway",
        cwd=ROOT,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"LIVERMORE_GATEWAY_TOKEN" in stderr
