"""alert_history is written from the durable alert stream, after publication: every published
alert reaches it exactly once, across crashes between publish and insert, and replays."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import msgspec
import pytest
import redis.asyncio as aioredis

from livermore_common import messages
from livermore_common.cache import CandleCache
from livermore_common.db import Database
from livermore_common.keys import KeySpace
from livermore_common.messages import Alert
from livermore_common.streams import StreamConsumer, StreamEntry
from services.alerts import history
from services.alerts.evaluator import AlertEvaluator
from services.alerts.history import HISTORY_GROUP, HistoryWriter
from services.alerts.store import AlertStateStore
from services.indicators.store import StateStore
from services.indicators.worker import IndicatorWorker
from tests.helpers import eventually

from .conftest import closed, wave_candles
from .test_pipeline import stream_values


class Crash(BaseException):
    """A process dying mid-batch: nothing after it runs, the batch is not acked."""


async def publish_alerts(redis: aioredis.Redis, keys: KeySpace, series: int = 4) -> list[Alert]:
    """Worker and evaluator over wave series (no history writer): the alerts published."""
    cache = CandleCache(redis, keys)

    async def read(event, newest, oldest):  # type: ignore[no-untyped-def]
        return await cache.read_candles(
            event.exchange_id, event.symbol, event.timeframe, start_ms=oldest, end_ms=newest
        )

    worker = IndicatorWorker(
        store=StateStore(redis, stream=keys.indicator_stream), keys=keys, read_candles=read
    )
    evaluator = AlertEvaluator(store=AlertStateStore(redis, stream=keys.alert_stream), keys=keys)
    consumers = [
        StreamConsumer(redis, keys.candle_closed_stream, "indicators", "w1", worker.handle),
        StreamConsumer(redis, keys.indicator_stream, "alerts", "e1", evaluator.handle),
    ]
    for i in range(series):
        await cache.announce_closed_many(
            [closed(c, symbol=f"H{i}-USD") for c in wave_candles(120, phase=i / 3)]
        )
    while sum([await c.step(block_ms=10) for c in consumers]):
        pass
    alerts = await stream_values(redis, keys.alert_stream, Alert)
    assert len(alerts) >= 2 * series, "the waves are meant to cross levels"
    assert len({a.id for a in alerts}) == len(alerts), "an alert was published twice"
    return alerts


async def history_ids(db: Database) -> list[str]:
    rows = await db.pool.fetch("SELECT alert_id FROM alert_history ORDER BY alert_id")
    return [r["alert_id"] for r in rows]


async def test_every_published_alert_reaches_history_once_across_crashes(
    redis_client, keyspace, migrated_db
) -> None:
    published = await publish_alerts(redis_client, keyspace)
    want = sorted(a.id for a in published)
    # Published, not yet stored: the evaluator does not write the history itself.
    assert await history_ids(migrated_db) == []
    stream = keyspace.alert_stream

    def consumer(name: str, handler, **kw) -> StreamConsumer:  # type: ignore[no-untyped-def]
        return StreamConsumer(redis_client, stream, HISTORY_GROUP, name, handler, **kw)

    # Writer 1 dies after reading its batch, before inserting it: crash between publish and insert.
    async def dies_before_insert(entries: list[StreamEntry]) -> None:
        raise Crash

    with pytest.raises(Crash):
        await consumer("h1", dies_before_insert, batch_size=3).step(block_ms=10)
    # Writer 2 inserts its batch and dies before acking it.
    first = HistoryWriter(migrated_db)

    async def dies_after_insert(entries: list[StreamEntry]) -> None:
        await first.handle(entries)
        raise Crash

    with pytest.raises(Crash):
        await consumer("h2", dies_after_insert, batch_size=3).step(block_ms=10)
    assert first.inserted == 3
    assert (await redis_client.xpending(stream, HISTORY_GROUP))["pending"] == 6

    # Writer 3 takes over what the dead ones held (XAUTOCLAIM) and reads the rest.
    survivor = HistoryWriter(migrated_db)
    c3 = consumer("h3", survivor.handle, batch_size=4, claim_idle_ms=1)
    await asyncio.sleep(0.01)
    while await c3.step(block_ms=10):
        pass
    assert c3.stats.reclaimed == 6
    # A replay of entries already stored (a producer retrying, a stream copied back) adds nothing.
    for _, fields in await redis_client.xrange(stream, count=5):
        await redis_client.xadd(stream, {"data": fields[b"data"]})
    while await c3.step(block_ms=10):
        pass

    assert await history_ids(migrated_db) == want
    assert survivor.inserted == len(want) - 3
    assert survivor.seen == len(want) - 3 + 3 + 5  # its share, writer 2's replayed batch, replays
    assert (await redis_client.xpending(stream, HISTORY_GROUP))["pending"] == 0
    stored = {r.alert_id: r for r in await migrated_db.recent_alerts(limit=1000)}
    for alert in published:
        row = stored[alert.id]
        assert (row.symbol, row.timeframe, row.trigger_label, row.candle_timestamp) == (
            alert.symbol,
            alert.timeframe,
            alert.trigger_label,
            alert.candle_timestamp,
        )
        assert row.details["context"] == alert.context


async def test_alert_for_an_unknown_exchange_is_dead_lettered_not_blocking(
    redis_client, keyspace, migrated_db
) -> None:
    published = await publish_alerts(redis_client, keyspace, series=2)
    stray = msgspec.structs.replace(published[0], id="stray", source_exchange_id=999_999)
    await redis_client.xadd(keyspace.alert_stream, {"data": messages.encode(stray)})
    writer = HistoryWriter(migrated_db)
    c = StreamConsumer(redis_client, keyspace.alert_stream, HISTORY_GROUP, "h", writer.handle)
    while await c.step(block_ms=10):
        pass
    assert await history_ids(migrated_db) == sorted(a.id for a in published)
    assert await redis_client.xlen(keyspace.dead_letter_stream(keyspace.alert_stream)) == 1


async def test_alerts_service_stores_what_was_published_while_no_writer_ran(
    redis_url, namespace, redis_client, keyspace, database_url, migrated_db
) -> None:
    """`livermore alerts` started after alerts were published (its predecessor crashed between
    publish and insert, or history was off) stores every one of them, once."""
    published = await publish_alerts(redis_client, keyspace)
    # One of them is stored already: the predecessor crashed after inserting, before its ack.
    await HistoryWriter(migrated_db).handle([StreamEntry("0-1", messages.encode(published[0]), 1)])
    env = {
        **os.environ,
        "LIVERMORE_REDIS_URL": redis_url,
        "LIVERMORE_NAMESPACE": namespace,
        "LIVERMORE_DATABASE_URL": database_url,
        "LIVERMORE_LOG_FORMAT": "json",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "alerts"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    want = sorted(a.id for a in published)
    try:

        async def stored() -> bool:
            return await history_ids(migrated_db) == want

        await eventually(stored, timeout=30, interval=0.1)

        async def acked() -> bool:
            info = await redis_client.xinfo_groups(keyspace.alert_stream)
            mine = [g for g in info if g["name"] == HISTORY_GROUP.encode()]
            return bool(mine) and not mine[0]["pending"] and not mine[0].get("lag")

        await eventually(acked, timeout=10, interval=0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode == 0
    assert await history_ids(migrated_db) == want


class FlakyDatabase:
    """The real database behind a connection that refuses the first `failures` statements."""

    def __init__(self, db: Database, failures: int) -> None:
        self._db, self.failures = db, failures

    @property
    def pool(self) -> FlakyDatabase:
        return self

    async def execute(self, *args: object) -> str:
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("postgres is down")
        return await self._db.pool.execute(*args)  # type: ignore[arg-type]


async def test_postgres_outage_is_waited_out_not_dead_lettered(
    redis_client, keyspace, migrated_db, monkeypatch
) -> None:
    monkeypatch.setattr(history, "_RETRY_FIRST_S", 0.01)
    published = await publish_alerts(redis_client, keyspace, series=2)
    flaky = FlakyDatabase(migrated_db, failures=8)  # more than max_deliveries (5)
    writer = HistoryWriter(flaky)  # type: ignore[arg-type]
    c = StreamConsumer(redis_client, keyspace.alert_stream, HISTORY_GROUP, "h", writer.handle)
    while await c.step(block_ms=10):
        pass
    assert writer.retries == 8 and flaky.failures == 0
    assert await history_ids(migrated_db) == sorted(a.id for a in published)
    assert await redis_client.exists(keyspace.dead_letter_stream(keyspace.alert_stream)) == 0
    assert (await redis_client.xpending(keyspace.alert_stream, HISTORY_GROUP))["pending"] == 0


async def test_a_stopping_writer_leaves_the_batch_pending(
    redis_client, keyspace, migrated_db
) -> None:
    await publish_alerts(redis_client, keyspace, series=2)
    stop = asyncio.Event()
    stop.set()
    flaky = FlakyDatabase(migrated_db, failures=1_000)
    writer = HistoryWriter(flaky, stop=stop)  # type: ignore[arg-type]
    c = StreamConsumer(redis_client, keyspace.alert_stream, HISTORY_GROUP, "h", writer.handle)
    await c.step(block_ms=10)
    assert await history_ids(migrated_db) == []
    pending = await redis_client.xpending(keyspace.alert_stream, HISTORY_GROUP)
    assert pending["pending"] == await redis_client.xlen(keyspace.alert_stream)
    assert await redis_client.exists(keyspace.dead_letter_stream(keyspace.alert_stream)) == 0
