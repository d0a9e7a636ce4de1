"""`livermore up` end to end: data flows for the autostarted exchange, and SIGTERM stops every
child cleanly (exit 0, no process left behind)."""

from __future__ import annotations

import asyncio
import re
import signal

import asyncpg
import pytest
import redis.asyncio as aioredis

from livermore_common.keys import KeySpace
from tests.helpers import eventually
from tests.integration.deploy.procs import (
    LIVERMORE,
    Lines,
    alive,
    base_env,
    descendants,
    free_port,
    kill_all,
)

pytestmark = pytest.mark.integration

ADMIN = re.compile(r"^\[up\] admin page (http://\S+)$")


async def _count(redis: aioredis.Redis, pattern: str) -> int:
    return len([k async for k in redis.scan_iter(match=pattern, count=1000)])


async def test_up_runs_the_system_and_stops_it_cleanly(
    redis_url: str,
    database_url: str,
    namespace: str,
    keyspace: KeySpace,
    redis_client: aioredis.Redis,
    tmp_path,
) -> None:
    port = free_port()
    env = base_env() | {
        "LIVERMORE_REDIS_URL": redis_url,
        "LIVERMORE_DATABASE_URL": database_url,
        "LIVERMORE_NAMESPACE": namespace,
        "LIVERMORE_GATEWAY_PORT": str(port),
        "LIVERMORE_STATE_DIR": str(tmp_path / "state"),
    }
    proc = await asyncio.create_subprocess_exec(
        *LIVERMORE,
        "up",
        "--autostart",
        "coinbase",
        "--embedded",
        "never",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    out = Lines(proc.stdout)
    seen: set[int] = set()
    try:
        line = await eventually(lambda: next(filter(ADMIN.match, out.lines), None), timeout=45)
        assert ADMIN.match(line).group(1) == f"http://127.0.0.1:{port}/"  # type: ignore[union-attr]

        conn = await asyncpg.connect(database_url)
        try:
            ids = dict(await conn.fetch("SELECT name, id FROM exchanges"))
        finally:
            await conn.close()
        coinbase, binance = ids["coinbase"], ids["binance"]
        candles = keyspace.candle_key(coinbase, "*", "*")
        indicators = keyspace.indicator_key(coinbase, "*", "*", "macd-v")
        await eventually(lambda: _count(redis_client, candles), timeout=40, interval=0.5)
        await eventually(lambda: _count(redis_client, indicators), timeout=30, interval=0.5)
        # Only the named exchange connected: the other ingestor stays idle.
        assert await _count(redis_client, keyspace.candle_key(binance, "*", "*")) == 0

        seen = descendants(proc.pid)
        # migrate has exited; sim, two ingestors, indicators, alerts, symbols, gateway remain.
        assert len(seen) >= 7
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 40)
        assert code == 0, out.tail()
        left = [pid for pid in seen if alive(pid)]
        assert not left, f"processes left behind: {left}"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        kill_all({p for p in seen if alive(p)})
        await out.aclose()
