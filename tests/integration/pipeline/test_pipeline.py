"""Closed candles through the indicator worker and the alert evaluator on real Redis/Postgres."""

from __future__ import annotations

import asyncio
import math

import msgspec
import pytest
import redis.asyncio as aioredis

from livermore_common import messages
from livermore_common.cache import CandleCache
from livermore_common.db import Database
from livermore_common.indicators import macdv_series
from livermore_common.keys import KeySpace
from livermore_common.messages import Alert, IndicatorUpdate
from livermore_common.streams import StreamConsumer
from services.alerts.evaluator import AlertEvaluator
from services.alerts.history import HISTORY_GROUP, HistoryWriter
from services.alerts.rules import AlertState, evaluate_update, to_alert
from services.alerts.store import AlertStateStore
from services.indicators.store import StateStore
from services.indicators.worker import IndicatorWorker, to_update
from tests.helpers import eventually

from .conftest import MIN, closed, trend_candles, wave_candles


class Pipeline:
    def __init__(self, redis: aioredis.Redis, keys: KeySpace, db: Database) -> None:
        cache = CandleCache(redis, keys)

        async def read(event, newest, oldest):  # type: ignore[no-untyped-def]
            return await cache.read_candles(
                event.exchange_id, event.symbol, event.timeframe, start_ms=oldest, end_ms=newest
            )

        self.cache = cache
        self.worker = IndicatorWorker(
            store=StateStore(redis, stream=keys.indicator_stream), keys=keys, read_candles=read
        )
        self.evaluator = AlertEvaluator(
            store=AlertStateStore(redis, stream=keys.alert_stream),
            keys=keys,
        )
        self.history = HistoryWriter(db)
        self.indicator_consumer = StreamConsumer(
            redis, keys.candle_closed_stream, "indicators", "w1", self.worker.handle, block_ms=10
        )
        self.alert_consumer = StreamConsumer(
            redis, keys.indicator_stream, "alerts", "e1", self.evaluator.handle, block_ms=10
        )
        self.history_consumer = StreamConsumer(
            redis, keys.alert_stream, HISTORY_GROUP, "h1", self.history.handle, block_ms=10
        )

    async def drain(self) -> None:
        for _ in range(1000):
            moved = await self.indicator_consumer.step(block_ms=10)
            moved += await self.alert_consumer.step(block_ms=10)
            moved += await self.history_consumer.step(block_ms=10)
            if not moved:
                return


def expected_updates(events):  # type: ignore[no-untyped-def]
    """From-scratch MACD-V over the candles, as the updates the worker must publish."""
    points = macdv_series([e.candle() for e in events], MIN)
    return [to_update(e, p) for e, p in zip(events, points, strict=True) if p.macd_v is not None]


def expected_alerts(updates):  # type: ignore[no-untyped-def]
    state, out = AlertState(), []
    for u in updates:
        state, decisions = evaluate_update(state, u)
        out += [to_alert(d, u).id for d in decisions]
    return out


async def stream_values(redis, stream, type_):  # type: ignore[no-untyped-def]
    return [messages.decode(f[b"data"], type_) for _, f in await redis.xrange(stream)]


@pytest.fixture
async def pipeline(redis_client, keyspace, migrated_db):  # type: ignore[no-untyped-def]
    return Pipeline(redis_client, keyspace, migrated_db)


async def test_known_series_yields_exact_indicators_and_alerts(
    pipeline, redis_client, keyspace, migrated_db
) -> None:
    events = [closed(c) for c in wave_candles(120)]
    # A plain redis-py subscriber, as a bot would do it, on the exchange-scoped alert channel.
    sub = redis_client.pubsub()
    await sub.subscribe(keyspace.alerts_channel(1))
    await pipeline.cache.announce_closed_many(events)
    await pipeline.drain()

    want = expected_updates(events)
    got = await stream_values(redis_client, keyspace.indicator_stream, IndicatorUpdate)
    assert [u.timestamp for u in got] == [u.timestamp for u in want]
    for g, w in zip(got, want, strict=True):
        for field in ("macd_v", "signal", "histogram", "fast_ema", "slow_ema", "atr"):
            gv, wv = getattr(g, field), getattr(w, field)
            assert (gv is None and wv is None) or math.isclose(gv, wv, abs_tol=1e-6), field
        assert g.stage == w.stage and g.seeded and g.liquidity == "high"
    latest = messages.decode(
        await redis_client.get(keyspace.indicator_key(1, "BTC-USD", "1m", "macd-v")),
        IndicatorUpdate,
    )
    assert latest.timestamp == events[-1].timestamp

    want_alerts = expected_alerts(want)
    assert want_alerts, "the series is meant to cross levels"
    alerts = await stream_values(redis_client, keyspace.alert_stream, Alert)
    assert [a.id for a in alerts] == want_alerts
    received: list[Alert] = []

    async def collect() -> int:
        while m := await sub.get_message(ignore_subscribe_messages=True, timeout=0.05):
            received.append(msgspec.json.decode(m["data"], type=Alert))
        return len(received) >= len(want_alerts)

    await eventually(collect, timeout=5)
    assert [a.id for a in received] == want_alerts
    assert {(a.source_exchange_id, a.source_exchange_name) for a in received} == {(1, "coinbase")}
    stored = await migrated_db.recent_alerts(exchange_id=1, limit=100)
    assert sorted(r.alert_id for r in stored) == sorted(want_alerts)
    await sub.aclose()


async def test_replayed_and_duplicated_events_change_nothing(
    pipeline, redis_client, keyspace
) -> None:
    events = [closed(c, symbol="ADA-USD") for c in wave_candles(120)]
    await pipeline.cache.announce_closed_many(events)
    await pipeline.drain()
    before_ind = await redis_client.xlen(keyspace.indicator_stream)
    before_alerts = await redis_client.xlen(keyspace.alert_stream)
    assert before_alerts >= 1  # the wave crosses levels
    # Replay the very same events onto the stream (as a crashed producer might).
    for e in events[-20:]:
        await redis_client.xadd(keyspace.candle_closed_stream, {"data": messages.encode(e)})
    await pipeline.drain()
    assert await redis_client.xlen(keyspace.indicator_stream) == before_ind
    assert await redis_client.xlen(keyspace.alert_stream) == before_alerts
    # The newest replay is a plain duplicate; older ones are checked against storage by a rebuild.
    assert pipeline.worker.stats.duplicates >= 1
    assert pipeline.worker.stats.duplicates + pipeline.worker.stats.rebuilds >= 20


async def test_missing_state_catches_up_every_stored_candle_once(
    pipeline, redis_client, keyspace
) -> None:
    events = [closed(c, symbol="ETH-USD") for c in wave_candles(80)]
    # Candles 0..59 are stored without stream events (history loaded before the worker ran, or
    # events another worker has not handled yet); then the rest arrive live. Every stored candle
    # gets exactly one update, computed from scratch.
    await pipeline.cache.announce_closed_many(events[:60])
    await redis_client.delete(keyspace.candle_closed_stream)
    await pipeline.cache.announce_closed_many(events[60:])
    await pipeline.drain()
    got = await stream_values(redis_client, keyspace.indicator_stream, IndicatorUpdate)
    want = expected_updates(events)
    assert [g.timestamp for g in got] == [w.timestamp for w in want]
    for g, w in zip(got, want, strict=True):
        assert math.isclose(g.macd_v, w.macd_v, abs_tol=1e-6)
    assert pipeline.worker.stats.rebuilds >= 1


async def test_many_series_without_state_in_one_batch_are_each_rebuilt_exactly(
    pipeline, redis_client, keyspace
) -> None:
    """A worker starting on stored history (state lost): every series of one batch is rebuilt
    from its history, read concurrently, up to its own first event; its own event's candle
    included; each update computed from scratch, once."""
    symbols = [f"S{n:02d}-USD" for n in range(40)]
    series = {
        s: [closed(c, symbol=s) for c in wave_candles(60, phase=n * 0.7)]
        for n, s in enumerate(symbols)
    }
    for events in series.values():
        await pipeline.cache.announce_closed_many(events[:50])
    await redis_client.delete(keyspace.candle_closed_stream)  # history only: no state, no events
    # One live close per series, all in one batch; for one series the close's candle is not
    # stored (it must come from the event itself).
    live = [events[50] for events in series.values()]
    await pipeline.cache.announce_closed_many(live[1:])
    await redis_client.xadd(keyspace.candle_closed_stream, {"data": messages.encode(live[0])})
    await pipeline.drain()
    got = await stream_values(redis_client, keyspace.indicator_stream, IndicatorUpdate)
    assert pipeline.worker.stats.rebuilds == len(symbols)
    for symbol, events in series.items():
        want = expected_updates(events[:51])
        mine = [g for g in got if g.symbol == symbol]
        assert [g.timestamp for g in mine] == [w.timestamp for w in want], symbol
        for g, w in zip(mine, want, strict=True):
            assert math.isclose(g.macd_v, w.macd_v, abs_tol=1e-6)


async def test_events_handled_out_of_order_lose_nothing(pipeline, redis_client, keyspace) -> None:
    """What two workers racing on one series amount to: later events handled first."""
    events = [closed(c, symbol="XRP-USD") for c in wave_candles(90)]
    await pipeline.cache.announce_closed_many(events)
    await redis_client.delete(keyspace.candle_closed_stream)
    for e in events[60:] + events[:60]:
        await redis_client.xadd(keyspace.candle_closed_stream, {"data": messages.encode(e)})
    await pipeline.drain()
    got = await stream_values(redis_client, keyspace.indicator_stream, IndicatorUpdate)
    want = expected_updates(events)
    assert sorted(g.timestamp for g in got) == [w.timestamp for w in want]
    assert len({g.timestamp for g in got}) == len(got)


async def test_stale_candles_update_state_but_raise_no_alert(
    pipeline, redis_client, keyspace
) -> None:
    events = [closed(c, symbol="SOL-USD", fresh=False) for c in trend_candles(60)]
    await pipeline.cache.announce_closed_many(events)
    await pipeline.drain()
    assert await redis_client.xlen(keyspace.indicator_stream) > 0
    assert await redis_client.xlen(keyspace.alert_stream) == 0


async def test_poison_event_goes_to_the_dead_letter_stream(
    pipeline, redis_client, keyspace
) -> None:
    await redis_client.xadd(keyspace.candle_closed_stream, {"data": b'{"not":"a candle"}'})
    await pipeline.drain()
    dead = keyspace.dead_letter_stream(keyspace.candle_closed_stream)
    assert await redis_client.xlen(dead) == 1


async def test_two_evaluators_racing_on_one_series_raise_every_alert_once(
    pipeline, redis_client, keyspace
) -> None:
    """Evaluator B gets the later half of a series' updates and runs first: it must wait for A
    to commit the earlier half (the updates carry their predecessor's timestamp)."""
    from livermore_common.streams import StreamEntry

    events = [closed(c, symbol="DOT-USD") for c in wave_candles(120)]
    await pipeline.cache.announce_closed_many(events)
    while await pipeline.indicator_consumer.step(block_ms=10):
        pass
    raw = await redis_client.xrange(keyspace.indicator_stream)
    entries = [StreamEntry(i.decode(), f[b"data"], 1) for i, f in raw]
    half = len(entries) // 2
    later = asyncio.create_task(pipeline.evaluator.handle(entries[half:]))
    await asyncio.sleep(0.1)  # B is already waiting when A starts
    await pipeline.evaluator.handle(entries[:half])
    await later
    updates = [messages.decode(e.data, IndicatorUpdate) for e in entries]
    alerts = await stream_values(redis_client, keyspace.alert_stream, Alert)
    assert [a.id for a in alerts] == expected_alerts(updates)
    assert pipeline.evaluator.stats.order_waits > 0
