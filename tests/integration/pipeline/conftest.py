"""Fixtures for the indicator/alert pipeline: a migrated database and candle series."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import pytest

from livermore_common.cache import CandleCache
from livermore_common.db import Database
from livermore_common.keys import KeySpace
from livermore_common.messages import Candle, CandleClosed
from livermore_common.migrate import migrate
from services.indicators.store import StateStore
from services.indicators.worker import IndicatorWorker

START = 1_704_067_200_000
MIN = 60_000


@pytest.fixture
async def migrated_db(database_url: str) -> AsyncIterator[Database]:
    await migrate(database_url)
    async with Database(database_url) as db:
        yield db


def local_worker(redis, keys: KeySpace, cache: CandleCache) -> IndicatorWorker:  # type: ignore[no-untyped-def]
    """An in-process `IndicatorWorker` reading the exchange-scoped candle sets."""

    async def read(event, newest, oldest):  # type: ignore[no-untyped-def]
        return await cache.read_candles(
            event.exchange_id, event.symbol, event.timeframe, start_ms=oldest, end_ms=newest
        )

    return IndicatorWorker(
        store=StateStore(redis, stream=keys.indicator_stream), keys=keys, read_candles=read
    )


def trend_candles(n: int, *, up: bool = True, start: int = START, step: int = MIN) -> list[Candle]:
    """Vector T of DOMAIN.md §5 (p x 1.005 or x 0.995 per bar; O=C=p, H=1.01p, L=0.99p)."""
    out, p = [], 100.0
    for i in range(n):
        p *= 1.005 if up else 0.995
        out.append(
            Candle(
                timestamp=start + i * step, open=p, high=1.01 * p, low=0.99 * p, close=p, volume=1.0
            )
        )
    return out


def wave_candles(
    n: int, *, start: int = START, step: int = MIN, phase: float = 0.0
) -> list[Candle]:
    """Vector A's shape, extended: a sine with drift, swinging MACD-V through both extremes."""
    out, prev = [], None
    for i in range(n):
        close = 100 + 10 * math.sin(i / 5 + phase) + 0.5 * i
        open_ = close - 0.3 if prev is None else prev
        high = max(open_, close) + 1 + (i % 3) * 0.5
        low = min(open_, close) - 1 - (i % 4) * 0.25
        out.append(
            Candle(
                timestamp=start + i * step,
                open=open_,
                high=high,
                low=low,
                close=close,
                volume=1.0 + i,
            )
        )
        prev = close
    return out


def closed(
    candle: Candle,
    *,
    symbol: str = "BTC-USD",
    exchange_id: int = 1,
    exchange: str = "coinbase",
    timeframe: str = "1m",
    fresh: bool = True,
) -> CandleClosed:
    step = MIN if timeframe == "1m" else 5 * MIN
    return CandleClosed(
        exchange_id=exchange_id,
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        timestamp=candle.timestamp,
        open=candle.open,
        high=candle.high,
        low=candle.low,
        close=candle.close,
        volume=candle.volume,
        exchange_time=candle.timestamp + step + 1000 if fresh else candle.timestamp + 100 * step,
    )
