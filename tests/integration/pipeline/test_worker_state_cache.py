"""Workers remember the state they last committed (a round trip saved per batch); a remembered
state another worker has moved on, or rebuilt at the same timestamp, must lose the compare-and-set
and be reloaded: every value still equals the from-scratch computation, none twice, none lost."""

from __future__ import annotations

import msgspec

from livermore_common import messages
from livermore_common.cache import CandleCache
from livermore_common.messages import Alert, IndicatorUpdate
from livermore_common.streams import StreamEntry
from services.alerts.evaluator import AlertEvaluator
from services.alerts.store import AlertStateStore

from .conftest import closed, local_worker, wave_candles
from .test_pipeline import expected_alerts, expected_updates, stream_values


def _entry(event, n):  # type: ignore[no-untyped-def]
    return StreamEntry(f"{n}-0", messages.encode(event), 1)


async def test_two_workers_taking_turns_on_one_series_stay_exact(redis_client, keyspace) -> None:
    cache = CandleCache(redis_client, keyspace)
    a, b = local_worker(redis_client, keyspace, cache), local_worker(redis_client, keyspace, cache)
    events = [closed(c) for c in wave_candles(90)]
    await cache.announce_closed_many(events)
    # Runs of 1..4 closes per turn: each worker's remembered state is stale at its next turn.
    n, turn = 0, 0
    while n < len(events):
        size = 1 + turn % 4
        worker = a if turn % 2 == 0 else b
        await worker.handle([_entry(e, n + i) for i, e in enumerate(events[n : n + size])])
        n, turn = n + size, turn + 1
    got = await stream_values(redis_client, keyspace.indicator_stream, IndicatorUpdate)
    want = expected_updates(events)
    assert [(u.timestamp, u.macd_v, u.signal) for u in got] == [
        (u.timestamp, u.macd_v, u.signal) for u in want
    ]
    assert a.stats.cas_retries > 0 and b.stats.cas_retries > 0  # the stale states were caught


async def test_a_state_rebuilt_at_the_same_timestamp_is_not_overwritten_by_a_stale_one(
    redis_client, keyspace
) -> None:
    cache = CandleCache(redis_client, keyspace)
    a, b = local_worker(redis_client, keyspace, cache), local_worker(redis_client, keyspace, cache)
    candles = wave_candles(60)
    events = [closed(c) for c in candles]
    # Candle 40 is missing at first, then repaired (an older candle arriving late).
    first = [e for i, e in enumerate(events[:50]) if i != 40]
    await cache.announce_closed_many(first)
    await a.handle([_entry(e, i) for i, e in enumerate(first)])
    await cache.announce_closed_many([events[40]])
    await b.handle([_entry(events[40], 1000)])  # b rebuilds the state at the same last timestamp
    await cache.announce_closed_many(events[50:])
    await a.handle([_entry(e, 2000 + i) for i, e in enumerate(events[50:])])  # a's memory is stale
    state = await redis_client.hget(
        keyspace.indicator_state_key(1, "BTC-USD", "1m", "macd-v"), "ts"
    )
    assert int(state) == events[-1].timestamp
    last = msgspec.json.decode(
        await redis_client.get(keyspace.indicator_key(1, "BTC-USD", "1m", "macd-v")),
        type=IndicatorUpdate,
    )
    want = expected_updates(events)[-1]
    assert (last.timestamp, last.macd_v, last.signal) == (want.timestamp, want.macd_v, want.signal)


async def test_two_evaluators_taking_turns_raise_every_alert_once(redis_client, keyspace) -> None:
    """The same for alert state: each evaluator's remembered state is stale at its next turn."""
    cache = CandleCache(redis_client, keyspace)
    worker = local_worker(redis_client, keyspace, cache)
    events = [closed(c, symbol="DOT-USD") for c in wave_candles(150)]
    await cache.announce_closed_many(events)
    await worker.handle([_entry(e, i) for i, e in enumerate(events)])
    raw = await redis_client.xrange(keyspace.indicator_stream)
    entries = [StreamEntry(i.decode(), f[b"data"], 1) for i, f in raw]

    def evaluator():  # type: ignore[no-untyped-def]
        store = AlertStateStore(redis_client, stream=keyspace.alert_stream)
        return AlertEvaluator(store=store, keys=keyspace)

    a, b = evaluator(), evaluator()
    n, turn = 0, 0
    while n < len(entries):
        size = 1 + turn % 5
        await (a if turn % 2 == 0 else b).handle(entries[n : n + size])
        n, turn = n + size, turn + 1
    updates = [messages.decode(e.data, IndicatorUpdate) for e in entries]
    alerts = await stream_values(redis_client, keyspace.alert_stream, Alert)
    assert alerts, "the series raises alerts"
    assert [x.id for x in alerts] == expected_alerts(updates)
    # each noticed that its remembered state was stale (a predecessor it had not seen, or a lost
    # compare-and-set) and reloaded it
    for ev in (a, b):
        assert ev.stats.order_waits + ev.stats.cas_retries > 0
