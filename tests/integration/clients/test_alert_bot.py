"""examples/alert_bot.py, run as a process, receives real alerts from the indicator worker and
alert evaluator, catches up from the durable stream after downtime and handles each alert once."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from livermore_common.cache import CandleCache
from livermore_common.db import Database
from livermore_common.keys import KeySpace
from livermore_common.messages import CandleClosed
from livermore_common.streams import StreamConsumer
from services.alerts.evaluator import AlertEvaluator
from services.alerts.history import HISTORY_GROUP, HistoryWriter
from services.alerts.store import AlertStateStore
from services.indicators.store import StateStore
from services.indicators.worker import IndicatorWorker
from tests.helpers import eventually
from tests.integration.pipeline.conftest import closed, wave_candles

from .conftest import ROOT

EXAMPLE = ROOT / "examples" / "alert_bot.py"


class Pipeline:
    """The real indicator worker and alert evaluator, driven in-process over real Redis."""

    def __init__(self, redis: aioredis.Redis, keys: KeySpace, db: Database) -> None:
        self.cache = CandleCache(redis, keys)

        async def read(event, newest, oldest):  # type: ignore[no-untyped-def]
            return await self.cache.read_candles(
                event.exchange_id, event.symbol, event.timeframe, start_ms=oldest, end_ms=newest
            )

        worker = IndicatorWorker(
            store=StateStore(redis, stream=keys.indicator_stream), keys=keys, read_candles=read
        )
        evaluator = AlertEvaluator(
            store=AlertStateStore(redis, stream=keys.alert_stream), keys=keys
        )
        history = HistoryWriter(db)
        self.consumers = [
            StreamConsumer(redis, keys.candle_closed_stream, "indicators", "w1", worker.handle),
            StreamConsumer(redis, keys.indicator_stream, "alerts", "e1", evaluator.handle),
            StreamConsumer(redis, keys.alert_stream, HISTORY_GROUP, "h1", history.handle),
        ]

    async def feed(self, events: list[CandleClosed]) -> None:
        """Announce closed candles as an ingestor does, then run both stages until idle."""
        await self.cache.announce_closed_many(events)
        for _ in range(1000):
            moved = 0
            for consumer in self.consumers:
                moved += await consumer.step(block_ms=10)
            if not moved:
                return


@pytest.fixture
async def pipeline(
    redis_client: aioredis.Redis, keyspace: KeySpace, migrated_url: str
) -> AsyncIterator[Pipeline]:
    async with Database(migrated_url) as db:
        yield Pipeline(redis_client, keyspace, db)


class Bot:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, env: dict[str, str], *args: str) -> Bot:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLE),
            *args,
            env=env,
            cwd=EXAMPLE.parent,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def alert(self, timeout: float = 30) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            assert self.proc.stderr is not None
            raise AssertionError(f"bot exited: {(await self.proc.stderr.read()).decode()}")
        decoded: dict[str, Any] = json.loads(raw)
        return decoded

    async def exit_code(self, timeout: float = 30) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return await self.exit_code()

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


@pytest.fixture
async def bots() -> AsyncIterator[list[Bot]]:
    started: list[Bot] = []
    yield started
    for bot in started:
        bot.kill()
        await bot.proc.wait()


async def stream_alerts(
    redis: aioredis.Redis, keys: KeySpace
) -> list[tuple[bytes, dict[str, Any]]]:
    """(raw JSON, decoded) of every alert in the durable stream, oldest first."""
    return [(f[b"data"], json.loads(f[b"data"])) for _, f in await redis.xrange(keys.alert_stream)]


async def subscribed(redis: aioredis.Redis, *channels: str) -> None:
    async def all_have_a_subscriber() -> bool:
        counts = dict(await redis.pubsub_numsub(*channels))
        return all(counts.get(c.encode(), 0) >= 1 for c in channels)

    await eventually(all_have_a_subscriber, timeout=30)


async def test_example_bot_gets_real_alerts_catches_up_after_downtime_and_never_repeats(
    pipeline, redis_client, keyspace, client_env, tmp_path: Path, bots
) -> None:
    env = client_env | {"ALERT_BOT_STATE": str(tmp_path / "bot-state.json")}
    coinbase = [closed(c) for c in wave_candles(150)]
    binance = [
        closed(c, symbol="BTCUSDT", exchange_id=2, exchange="binance") for c in wave_candles(90)
    ]
    binance_us = [
        closed(c, symbol="BTCUSD", exchange_id=3, exchange="binance_us") for c in wave_candles(90)
    ]

    # Run 1: the bot follows Coinbase and Binance live.
    bot = await Bot.start(env, "--exchange", "1,2", "--json")
    bots.append(bot)
    await subscribed(redis_client, keyspace.alerts_channel(1), keyspace.alerts_channel(2))
    await pipeline.feed(coinbase[:90])
    ((raw_a1, a1),) = await stream_alerts(redis_client, keyspace)
    received = await bot.alert()
    assert received == a1
    assert (received["source_exchange_id"], received["source_exchange_name"]) == (1, "coinbase")
    assert await bot.terminate() == 0

    # While it is down: more Coinbase, a Binance alert, and one of an exchange it does not follow.
    await pipeline.feed(coinbase[90:120])
    await pipeline.feed(binance)
    await pipeline.feed(binance_us)
    missed = (await stream_alerts(redis_client, keyspace))[1:]
    assert [m["source_exchange_id"] for _, m in missed] == [1, 2, 3]
    (raw_a2, a2), (_, b1), (_, x) = missed

    # Run 2: catches up what it missed (not what it had), then follows live again.
    bot = await Bot.start(env, "--exchange", "1", "--exchange", "2", "--json", "--max-alerts", "3")
    bots.append(bot)
    assert [(await bot.alert())["id"] for _ in range(2)] == [a2["id"], b1["id"]]
    # Handled alerts delivered again (a producer re-publishing, a replay): dropped by id.
    await redis_client.publish(keyspace.alerts_channel(1), raw_a1)
    await redis_client.publish(keyspace.alerts_channel(1), raw_a2)
    await pipeline.feed(coinbase[120:150])
    a3 = (await stream_alerts(redis_client, keyspace))[-1][1]
    assert a3["id"] not in {a1["id"], a2["id"]} and a3["source_exchange_name"] == "coinbase"
    assert (await bot.alert())["id"] == a3["id"]
    assert await bot.exit_code() == 0  # --max-alerts 3: nothing else was handled

    state = json.loads((tmp_path / "bot-state.json").read_text())
    assert {a1["id"], a2["id"], b1["id"], a3["id"]} <= set(state["recent_ids"])
    assert x["id"] not in state["recent_ids"]


def _load_example() -> Any:
    spec = importlib.util.spec_from_file_location("alert_bot_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def test_example_bot_names_match_keys_py() -> None:
    bot = _load_example()
    for namespace in ("", "prod:"):
        keys = KeySpace(namespace)
        assert bot.alert_stream(namespace) == keys.alert_stream
        for exchange_id in (1, 2, 3):
            assert bot.alerts_channel(namespace, exchange_id) == keys.alerts_channel(exchange_id)


def test_example_bot_settings_from_environment_and_flags(tmp_path: Path) -> None:
    bot = _load_example()
    env = {
        "LIVERMORE_REDIS_URL": "redis://example:6379/3",
        "LIVERMORE_NAMESPACE": "prod:",
        "ALERT_BOT_EXCHANGES": "2,1",
        "ALERT_BOT_MAX_ALERTS": "5",
    }
    settings = bot.parse_settings([], env)
    assert (settings.redis_url, settings.namespace) == ("redis://example:6379/3", "prod:")
    assert settings.exchanges == (1, 2) and settings.max_alerts == 5
    flags = bot.parse_settings(["--exchange", "3", "--state", str(tmp_path / "s.json")], env)
    assert flags.exchanges == (3,) and flags.state_file == tmp_path / "s.json"
