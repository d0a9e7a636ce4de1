"""Contract check: both adapters against the project's simulator, compared with its ground truth."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from livermore_common.exchanges import (
    ClosedCandle,
    ExchangeAdapterFactory,
    ExchangeInfo,
    FeedDropped,
    FeedGap,
)
from livermore_common.timeframes import interval_ms
from services.sim.config import SimConfig
from services.sim.server import Simulator
from tests.helpers import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimConfig(symbols=6, speed=120.0, history_minutes=300, coinbase_public_rps=0)
    async with Simulator(config) as simulator:
        yield simulator


def row(sim: Simulator, name: str) -> ExchangeInfo:
    if name == "coinbase":
        return ExchangeInfo(
            id=1,
            name=name,
            display_name=name,
            ws_url=sim.coinbase_ws_url,
            rest_url=sim.coinbase_url,
        )
    return ExchangeInfo(
        id=2, name=name, display_name=name, ws_url=sim.binance_ws_url, rest_url=sim.binance_url
    )


@pytest.mark.parametrize("name", ["binance", "coinbase"])
async def test_rest_candles_equal_the_truth(sim: Simulator, name: str) -> None:
    async with ExchangeAdapterFactory().create_from_info(row(sim, name)) as adapter:
        top = await adapter.top_symbols(3)
        assert len(top) == 3 and top[0].volume_24h >= top[-1].volume_24h
        now = await adapter.server_time()
        for tf in ("1m", "5m"):
            start = now - 50 * interval_ms(tf)  # within the simulator's REST history
            got = await adapter.fetch_candles(top[0].symbol, tf, start, now)
            assert got, f"no {tf} candles"
            assert got == sim.truth.expected(name, top[0].symbol, tf, start, got[-1].timestamp + 1)
            assert got[-1].timestamp + interval_ms(tf) <= now  # closed only


@pytest.mark.parametrize("name", ["binance", "coinbase"])
async def test_live_closes_equal_the_truth(sim: Simulator, name: str) -> None:
    async with ExchangeAdapterFactory().create_from_info(row(sim, name)) as adapter:
        symbols = [s.symbol for s in await adapter.top_symbols(3)]
        feed = await adapter.open_feed(symbols, ["1m", "5m"])
        events: list[Any] = []

        async def collect() -> None:
            async for event in feed:
                events.append(event)

        reader = asyncio.create_task(collect())
        try:
            # Wait for a few closes of each 1m series (a sim minute is half a real second).
            await eventually(
                lambda: len([e for e in events if isinstance(e, ClosedCandle)]) >= 12, timeout=30
            )
        finally:
            reader.cancel()
            await feed.aclose()
        assert not [e for e in events if isinstance(e, FeedDropped)]
        closed = [e for e in events if isinstance(e, ClosedCandle)]
        for event in closed:
            truth = sim.truth.expected_one(
                name, event.symbol, event.timeframe, event.candle.timestamp
            )
            assert event.candle == truth, (event, truth)
        # Each (series, bucket) is closed once.
        keys = [(e.symbol, e.timeframe, e.candle.timestamp) for e in closed]
        assert len(keys) == len(set(keys))
        # Gaps may only concern the start: the first minute after subscribing (Coinbase without
        # proof) or buckets that closed between opening and subscribing (fast clocks).
        reasons = [e.reason for e in events if isinstance(e, FeedGap)]
        assert all("first minute" in r or "before the s" in r for r in reasons), reasons
