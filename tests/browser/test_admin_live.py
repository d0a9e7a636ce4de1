"""The admin page driving the real system: a real ingestor process against the simulator, and an
alert produced by the real indicator worker and alert evaluator, seen in headless Chromium."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from livermore_common.cache import CandleCache
from livermore_common.db import Database
from livermore_common.keys import KeySpace
from livermore_common.streams import StreamConsumer
from services.alerts.evaluator import AlertEvaluator
from services.alerts.history import HISTORY_GROUP, HistoryWriter
from services.alerts.store import AlertStateStore
from services.indicators.store import StateStore
from services.indicators.worker import IndicatorWorker
from tests.helpers import eventually
from tests.integration.gateway.support import (
    CONTROL_SECRET,
    TOKEN,
    gateway_settings,
    running_gateway,
)
from tests.integration.ingestor.conftest import pointed_db, sim  # noqa: F401 (fixtures)
from tests.integration.pipeline.conftest import closed, wave_candles

pytestmark = [pytest.mark.browser, pytest.mark.integration]

TIMEOUT_MS = 20_000


@pytest.fixture
async def live_system(
    pointed_db: Database,  # noqa: F811
    redis_client: aioredis.Redis,  # set up first, so its clean-up runs after the ingestor stops
    redis_url: str,
    database_url: str,
    namespace: str,
) -> AsyncIterator[str]:
    env = {
        **os.environ,
        "LIVERMORE_REDIS_URL": redis_url,
        "LIVERMORE_DATABASE_URL": database_url,
        "LIVERMORE_NAMESPACE": namespace,
        "LIVERMORE_CONTROL_SECRET": CONTROL_SECRET,
        "LIVERMORE_INSTANCE_ID": "live-cb-1",
        "LIVERMORE_LOG_FORMAT": "json",
    }
    ingestor = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.cli",
            "ingestor",
            "--exchange",
            "coinbase",
            "--symbols",
            "BTC-USD,ETH-USD",
            "--timeframes",
            "1m",
            "--history",
            "10",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    settings = gateway_settings(
        redis_url=redis_url, database_url=database_url, namespace=namespace, command_timeout=10.0
    )
    try:
        async with running_gateway(settings) as base_url:
            yield base_url
    finally:
        ingestor.send_signal(signal.SIGTERM)
        try:
            assert ingestor.wait(20) == 0
        except subprocess.TimeoutExpired:
            ingestor.kill()
            raise


async def _raise_real_alert(redis: aioredis.Redis, keys: KeySpace, db: Database) -> None:
    """Closed candles through the real worker and evaluator until an alert is published."""
    cache = CandleCache(redis, keys)

    async def read(event, newest, oldest):  # type: ignore[no-untyped-def]
        return await cache.read_candles(
            event.exchange_id, event.symbol, event.timeframe, start_ms=oldest, end_ms=newest
        )

    worker = IndicatorWorker(
        store=StateStore(redis, stream=keys.indicator_stream), keys=keys, read_candles=read
    )
    evaluator = AlertEvaluator(store=AlertStateStore(redis, stream=keys.alert_stream), keys=keys)
    ind = StreamConsumer(redis, keys.candle_closed_stream, "indicators", "b1", worker.handle)
    ev = StreamConsumer(redis, keys.indicator_stream, "alerts", "b1", evaluator.handle)
    hist = StreamConsumer(redis, keys.alert_stream, HISTORY_GROUP, "b1", HistoryWriter(db).handle)
    await cache.announce_closed_many([closed(c, symbol="WAVE-USD") for c in wave_candles(120)])
    while await ind.step(block_ms=10) + await ev.step(block_ms=10) + await hist.step(block_ms=10):
        pass
    assert evaluator.stats.alerts > 0


async def test_operator_drives_the_real_ingestor_and_sees_a_real_alert(
    page: Any,
    live_system: str,
    redis_client: aioredis.Redis,
    keyspace: KeySpace,
    pointed_db: Database,  # noqa: F811
) -> None:
    from playwright.async_api import expect

    by = page.get_by_test_id
    await page.goto(live_system + "/")
    await by("token-input").fill(TOKEN)
    await by("login-submit").click()
    state = by("exchange-state-coinbase")
    await expect(state).to_have_text("idle", timeout=TIMEOUT_MS)
    await expect(by("feed-status")).to_have_attribute("data-state", "live", timeout=TIMEOUT_MS)

    await by("start-coinbase").click()
    await expect(state).to_have_text("connected", timeout=TIMEOUT_MS)
    await expect(by("instance-state-coinbase-live-cb-1")).to_have_text("connected")
    await expect(by("lifecycle-list")).to_contain_text("exchange:connected", timeout=TIMEOUT_MS)

    # The backfill runs after the feed is connected (and is paced by the REST limit).
    async def stored() -> bool:
        return await redis_client.zcard(keyspace.candle_key(1, "BTC-USD", "1m")) > 0

    await eventually(stored, 20)

    await _raise_real_alert(redis_client, keyspace, pointed_db)
    alert = by("alerts-list").get_by_test_id("alert-item").first
    await expect(alert).to_be_visible(timeout=TIMEOUT_MS)
    await expect(alert.get_by_test_id("alert-exchange")).to_have_text("coinbase")
    await expect(alert.get_by_test_id("alert-symbol")).to_have_text("WAVE-USD")

    await by("stop-coinbase").click()
    await expect(state).to_have_text("idle", timeout=TIMEOUT_MS)
