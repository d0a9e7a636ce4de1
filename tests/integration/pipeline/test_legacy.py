"""DATA-04 in the worker: history the previous release stored under user-scoped keys is read when
the exchange-scoped key does not have it yet, so indicators continue without a cold start."""

from __future__ import annotations

import math

from livermore_common import messages
from livermore_common.cache import CandleCache
from livermore_common.config import CommonSettings
from livermore_common.messages import IndicatorUpdate
from livermore_common.streams import StreamConsumer
from services.indicators.config import IndicatorSettings
from services.indicators.service import candle_reader
from services.indicators.store import StateStore
from services.indicators.worker import IndicatorWorker

from .conftest import closed, wave_candles
from .test_pipeline import expected_updates, stream_values


async def test_legacy_history_seeds_the_exchange_scoped_series(redis_client, keyspace) -> None:
    events = [closed(c, symbol="LEG-USD") for c in wave_candles(80)]
    legacy_key = keyspace.legacy_candle_key(7, 1, "LEG-USD", "1m")
    for e in events[:60]:  # written the way the previous release stored candles
        await redis_client.zadd(legacy_key, {messages.encode(e.candle()): e.timestamp})
    cache = CandleCache(redis_client, keyspace)
    settings = IndicatorSettings(common=CommonSettings(), legacy_user_ids=(7,))
    worker = IndicatorWorker(
        store=StateStore(redis_client, stream=keyspace.indicator_stream),
        keys=keyspace,
        read_candles=candle_reader(cache, settings),
    )
    consumer = StreamConsumer(
        redis_client, keyspace.candle_closed_stream, "indicators", "w", worker.handle, block_ms=10
    )
    await cache.announce_closed_many(events[60:])
    while await consumer.step(block_ms=10):
        pass
    got = {
        g.timestamp: g
        for g in await stream_values(redis_client, keyspace.indicator_stream, IndicatorUpdate)
    }
    want = {w.timestamp: w for w in expected_updates(events)}
    assert set(got) == set(want)  # catch-up published the legacy history's values too, once
    for ts in (events[60].timestamp, events[-1].timestamp):
        assert math.isclose(got[ts].macd_v, want[ts].macd_v, abs_tol=1e-6)
    # Without the legacy user the same events would start cold (no value until bar 25 of the
    # new key): the legacy history really was used.
    assert got[events[60].timestamp].seeded
    assert await redis_client.zcard(legacy_key) == 60  # never written by the new code
