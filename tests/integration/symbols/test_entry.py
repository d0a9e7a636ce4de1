"""`livermore symbols --once` as a real process: lists, exit codes, no secret in its logs."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from livermore_common import messages
from livermore_common.messages import SymbolList

from .conftest import World

pytestmark = pytest.mark.integration


async def run_once(world: World, redis_url: str, *args: str) -> tuple[int, str]:
    env = {
        **os.environ,  # the fixture's LIVERMORE_DATABASE_URL, secrets key and SIM_* variables
        "LIVERMORE_REDIS_URL": redis_url,
        "LIVERMORE_NAMESPACE": world.keys.namespace,
        "LIVERMORE_LOG_FORMAT": "json",
        "LIVERMORE_LOG_LEVEL": "debug",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "symbols", "--once", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, output.decode(errors="replace")


async def test_once_writes_every_list_and_exits_zero(world: World, redis_url: str) -> None:
    code, output = await run_once(
        world, redis_url, "--exchange", "coinbase,binance", "--top", "coinbase=3,binance=2"
    )
    assert code == 0, output
    for exchange_id, size in ((1, 3), (2, 2)):
        raw = await world.redis.get(world.keys.symbol_list_key(exchange_id))
        listing = messages.decode(raw, SymbolList)
        assert sum(e.tier == 1 for e in listing.symbols) == size
        assert any(e.tier == 2 for e in listing.symbols)
    for secret in world.secret_values:
        assert secret not in output


async def test_once_exits_nonzero_when_a_venue_fails(world: World, redis_url: str) -> None:
    await world.db.set_exchange_endpoints("binance_us", "ws://127.0.0.1:9", "http://127.0.0.1:9")
    code, output = await run_once(world, redis_url, "--exchange", "binance_us,coinbase")
    assert code == 1
    assert await world.redis.exists(world.keys.symbol_list_key(1))  # the healthy one still ran
    for secret in world.secret_values:
        assert secret not in output


async def test_bad_settings_exit_2(world: World, redis_url: str) -> None:
    code, output = await run_once(world, redis_url, "--top", "binance=lots")
    assert code == 2 and "--top" in output
