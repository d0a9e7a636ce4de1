"""The keep-warm rehearsals (`livermore_common.warm`) of the worker and the evaluator run their
hot path for real but write nothing, and their Redis calls only read: no key, stream or channel
changes, however often they run, and the work that follows is exactly what it would have been."""

from __future__ import annotations

import asyncio
from typing import Any

from livermore_common import messages
from livermore_common.cache import CandleCache
from livermore_common.messages import Alert, IndicatorUpdate
from livermore_common.redisbus import execute_packed
from livermore_common.streams import StreamEntry
from services.alerts.evaluator import AlertEvaluator
from services.alerts.store import AlertStateStore

from .conftest import MIN, closed, local_worker, wave_candles
from .test_pipeline import expected_alerts, expected_updates, stream_values


async def _snapshot(redis, namespace: str) -> dict[bytes, Any]:  # type: ignore[no-untyped-def]
    out = {}
    async for key in redis.scan_iter(match=f"{namespace}*", count=1000):
        out[key] = await redis.dump(key)
    return out


def _recording(store: Any) -> list[Any]:
    """Wrap `store.pack` to keep what each rehearsal packed (and still pack it)."""
    packed: list[Any] = []
    real = store.pack

    def pack(items):  # type: ignore[no-untyped-def]
        packed.append(items)
        return real(items)

    store.pack = pack
    return packed


async def test_rehearsals_write_nothing_and_change_nothing_that_follows(
    redis_client, keyspace
) -> None:
    cache = CandleCache(redis_client, keyspace)
    worker = local_worker(redis_client, keyspace, cache)
    evaluator = AlertEvaluator(
        store=AlertStateStore(redis_client, stream=keyspace.alert_stream), keys=keyspace
    )
    worker.rehearse()  # nothing handled yet: nothing to rehearse, no error
    evaluator.rehearse()
    assert worker.touch() is None and evaluator.touch() is None
    worker_packed = _recording(worker._store)
    evaluator_packed = _recording(evaluator._store)
    events = [closed(c) for c in wave_candles(90)]
    await cache.announce_closed_many(events)
    pubsub = redis_client.pubsub()
    await pubsub.psubscribe(f"{keyspace.namespace}*")
    n = seen = 0
    for i in range(0, len(events), 10):
        part = events[i : i + 10]
        await worker.handle(
            [StreamEntry(f"{n + j}-0", messages.encode(e), 1) for j, e in enumerate(part)]
        )
        n += len(part)
        fresh = await redis_client.xrange(keyspace.indicator_stream)
        await evaluator.handle(
            [StreamEntry(eid.decode(), f[b"data"], 1) for eid, f in fresh[seen:]]
        )
        seen = len(fresh)
        while await pubsub.get_message(timeout=0.05) is not None:
            pass  # what the real commits published
        before = await _snapshot(redis_client, keyspace.namespace)
        touches = [c for c in (worker.touch(), evaluator.touch()) if c is not None]
        assert worker.touch() is not None  # it has committed series to read
        for _ in range(20):
            worker.rehearse()
            evaluator.rehearse()
            assert await execute_packed(redis_client, touches) == [1] * len(touches)
        await asyncio.sleep(0.05)
        assert await pubsub.get_message(timeout=0.1) is None  # nothing published
        assert await _snapshot(redis_client, keyspace.namespace) == before  # nothing written
    await pubsub.aclose()
    # The rehearsals ran the path for real: the next candle of the last series each time.
    assert len(worker_packed) == 9 * 20 and len(evaluator_packed) >= 5 * 20
    ((_, _, commit),) = worker_packed[-1]
    assert commit.new_ts == events[-1].timestamp + MIN and commit.updates
    ((_, _, _, _, new_ts, _, alerts),) = evaluator_packed[-1]
    assert new_ts == events[-1].timestamp + MIN and len(alerts) >= 1
    # And what the real work published is exactly the from-scratch result.
    got = await stream_values(redis_client, keyspace.indicator_stream, IndicatorUpdate)
    want = expected_updates(events)
    assert [(u.timestamp, u.macd_v) for u in got] == [(u.timestamp, u.macd_v) for u in want]
    alerts_got = await stream_values(redis_client, keyspace.alert_stream, Alert)
    assert expected_alerts(want), "the series is meant to cross levels"
    assert [a.id for a in alerts_got] == expected_alerts(want)
