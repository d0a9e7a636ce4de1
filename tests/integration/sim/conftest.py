"""A simulator started in-process on free ports, torn down after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from services.sim.config import SimConfig
from services.sim.server import Simulator

MakeSim = Callable[..., Awaitable[Simulator]]


@pytest.fixture
async def make_sim() -> AsyncIterator[MakeSim]:
    sims: list[Simulator] = []

    async def factory(**overrides: Any) -> Simulator:
        settings: dict[str, Any] = {
            "symbols": 8,
            "speed": 600.0,
            "history_minutes": 600,
            "coinbase_public_rps": 0,
        }
        settings.update(overrides)
        sim = Simulator(SimConfig(**settings))
        sims.append(sim)
        return await sim.start()

    yield factory
    for sim in sims:
        await sim.aclose()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
