"""Fixtures for ingestor tests: the simulator, a migrated database pointed at it, an ingestor."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis

from livermore_common import messages
from livermore_common.config import CommonSettings, Secret
from livermore_common.db import Database
from livermore_common.exchanges.factory import ExchangeAdapterFactory
from livermore_common.keys import KeySpace
from livermore_common.messages import Candle, CandleClosed
from livermore_common.migrate import migrate
from services.ingestor.config import IngestorSettings
from services.ingestor.runner import info_from_row
from services.ingestor.service import Ingestor
from services.sim.config import SimConfig
from services.sim.server import Simulator
from tests.helpers import eventually

SECRET = "test-control-secret"


def sim_config(**overrides: Any) -> SimConfig:
    """The ingestor tests' simulator: 8 symbols, a sim minute per real second."""
    base: dict[str, Any] = dict(
        symbols=8,
        seed=11,
        speed=60.0,
        binance_ping_interval_s=1.0,
        coinbase_public_rps=0.0,
        history_minutes=600,
    )
    return SimConfig(**(base | overrides))


@contextlib.asynccontextmanager
async def database_pointed_at(database_url: str, sim: Simulator) -> AsyncIterator[Database]:
    """The migrated test database with both venues' rows pointed at `sim`."""
    await migrate(database_url)
    async with Database(database_url) as db:
        await db.set_exchange_endpoints("coinbase", sim.coinbase_ws_url, sim.coinbase_url)
        await db.set_exchange_endpoints("binance", sim.binance_ws_url, sim.binance_url)
        yield db


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(sim_config()) as simulator:
        yield simulator


@pytest.fixture
async def pointed_db(database_url: str, sim: Simulator) -> AsyncIterator[Database]:
    async with database_pointed_at(database_url, sim) as db:
        yield db


def settings_for(
    exchange: str, database_url: str, redis_url: str, namespace: str, **overrides: Any
) -> IngestorSettings:
    common = CommonSettings(
        redis_url=redis_url,
        database_url=database_url,
        namespace=namespace,
        control_secret=Secret(SECRET),
    )
    base: dict[str, Any] = dict(
        common=common,
        exchange=exchange,
        history_candles=20,
        timeframes=("1m", "5m"),
        close_grace_ms=2000,
    )
    base.update(overrides)
    return IngestorSettings(**base)


class RunningIngestor:
    def __init__(self, ingestor: Ingestor, task: asyncio.Task[None], stop: asyncio.Event) -> None:
        self.ingestor, self.task, self.stop = ingestor, task, stop

    async def shutdown(self) -> None:
        self.stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, 15)


@pytest.fixture
async def start_ingestor(
    pointed_db: Database, redis_client: aioredis.Redis, keyspace: KeySpace
) -> AsyncIterator[Callable[..., Any]]:
    running: list[RunningIngestor] = []

    async def start(settings: IngestorSettings, instance_id: str = "i1") -> RunningIngestor:
        row = await pointed_db.get_exchange(settings.exchange)
        factory = ExchangeAdapterFactory()

        async def make_adapter():  # type: ignore[no-untyped-def]
            return factory.create_from_info(info_from_row(await pointed_db.get_exchange(row.id)))

        ingestor = Ingestor(
            settings=settings,
            redis=redis_client,
            keys=keyspace,
            info=info_from_row(row),
            adapter_factory=make_adapter,
            instance_id=instance_id,
        )
        stop = asyncio.Event()
        r = RunningIngestor(ingestor, asyncio.create_task(ingestor.run(stop)), stop)
        running.append(r)
        return r

    yield start
    for r in running:
        await r.shutdown()


async def stored(
    redis: aioredis.Redis, keys: KeySpace, ex: int, symbol: str, tf: str
) -> list[Candle]:
    raw = await redis.zrange(keys.candle_key(ex, symbol, tf), 0, -1)
    return [messages.decode(m, Candle) for m in raw]


async def announced(redis: aioredis.Redis, keys: KeySpace) -> list[CandleClosed]:
    entries = await redis.xrange(keys.candle_closed_stream)
    return [messages.decode(f[b"data"], CandleClosed) for _, f in entries]


def same_candle(a: Candle, b: Candle) -> bool:
    return a.timestamp == b.timestamp and all(
        math.isclose(getattr(a, f), getattr(b, f), rel_tol=1e-9, abs_tol=1e-9)
        for f in ("open", "high", "low", "close", "volume")
    )


def assert_matches_truth(
    sim: Simulator, exchange: str, symbol: str, tf: str, got: list[Candle]
) -> None:
    """Every stored candle equals the simulator's, and none is missing between first and last."""
    assert got, f"nothing stored for {exchange} {symbol} {tf}"
    step = got[1].timestamp - got[0].timestamp if len(got) > 1 else 60_000
    want = sim.truth.expected(exchange, symbol, tf, got[0].timestamp, got[-1].timestamp + 1)
    assert [c.timestamp for c in got] == [c.timestamp for c in want], (
        f"{exchange} {symbol} {tf}: stored buckets differ from the simulator (step {step})"
    )
    bad = [(g, w) for g, w in zip(got, want, strict=True) if not same_candle(g, w)]
    assert not bad, f"{exchange} {symbol} {tf}: values differ: {bad[:2]}"


def assert_no_duplicates(events: list[CandleClosed]) -> None:
    seen: set[tuple[int, str, str, int]] = set()
    for e in events:
        key = (e.exchange_id, e.symbol, e.timeframe, e.timestamp)
        assert key not in seen, f"announced twice: {key}"
        seen.add(key)


async def wait_for_closes(
    redis: aioredis.Redis,
    keys: KeySpace,
    ex: int,
    symbols: Sequence[str],
    tf: str,
    n: int,
    *,
    timeout: float = 40,
) -> None:
    """Until every one of `symbols` has at least `n` stored `tf` candles."""

    async def enough() -> bool:
        counts = [len(await stored(redis, keys, ex, s, tf)) for s in symbols]
        return min(counts) >= n

    await eventually(enough, timeout=timeout, interval=0.2)
