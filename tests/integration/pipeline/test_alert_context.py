"""An alert's multi-timeframe context is completed inside the commit script: the same stages and
bias (DOMAIN.md §6) as `rules.timeframe_bias` gives, for any mix of stored timeframes."""

from __future__ import annotations

import random

import msgspec
import pytest
from redis.exceptions import ResponseError

from livermore_common import messages
from livermore_common.indicators import macdv_series
from livermore_common.messages import Alert, IndicatorUpdate
from livermore_common.streams import StreamEntry
from services.alerts.evaluator import AlertEvaluator
from services.alerts.rules import BEARISH_STAGES, BULLISH_STAGES, timeframe_bias
from services.alerts.store import AlertStateStore, ContextSpec, Publication
from services.indicators.worker import to_update

from .conftest import MIN, closed, wave_candles
from .test_pipeline import stream_values

TIMEFRAMES = ("1m", "5m", "15m", "1h", "4h", "1d")
STAGES = [*sorted(BULLISH_STAGES | BEARISH_STAGES), "ranging"]


def stored_value(symbol: str, tf: str, stage: str) -> IndicatorUpdate:
    return IndicatorUpdate(
        exchange_id=1, exchange="coinbase", symbol=symbol, timeframe=tf, type="macd-v",
        timestamp=1_704_067_200_000, macd_v=1.0, signal=1.0, histogram=0.0, fast_ema=1.0,
        slow_ema=1.0, atr=1.0, stage=stage, seeded=True, n_eff=100, gap_ratio=0.0,
        liquidity="high", price=1.0,
    )  # fmt: skip


def an_alert(symbol: str, tf: str, stage: str) -> Alert:
    return Alert(
        id=f"{symbol}:{tf}", source_exchange_id=1, source_exchange_name="coinbase",
        symbol=symbol, timeframe=tf, alert_type="macdv", trigger_label="level_150",
        trigger_value=151.0, signal=140.0, histogram=11.0, stage=stage, price=1.0,
        candle_timestamp=1_704_067_200_000, triggered_at=1_704_067_261_000,
    )  # fmt: skip


async def test_context_and_bias_equal_the_rules_for_any_stages(redis_client, keyspace) -> None:
    store = AlertStateStore(redis_client, stream=keyspace.alert_stream)
    rng = random.Random(7)
    want: list[dict[str, object]] = []
    for n in range(200):
        symbol, own = f"C{n}-USD", rng.choice(TIMEFRAMES)
        stages = {own: rng.choice(STAGES)}
        others = []
        for tf in TIMEFRAMES:
            key = keyspace.indicator_key(1, symbol, tf, "macd-v")
            if tf == own:
                continue
            others.append((tf, key))
            if rng.random() < 0.7:  # some timeframes have no stored value
                stages[tf] = rng.choice(STAGES)
                await redis_client.set(key, messages.encode(stored_value(symbol, tf, stages[tf])))
        spec = ContextSpec(own, stages[own], others)
        publication = Publication(messages.encode(an_alert(symbol, own, stages[own])), spec)
        state_key = keyspace.alert_state_key(1, symbol, own)
        channel = keyspace.alerts_channel(1)
        results, contexts = await store.commit(
            [(state_key, channel, "", b"", 1, b"s", [publication])]
        )
        assert results == [True]
        want.append({"stages": stages, "bias": timeframe_bias(stages).bias})
        assert msgspec.json.decode(contexts[0]) == want[-1]
    published = await stream_values(redis_client, keyspace.alert_stream, Alert)
    assert [a.context for a in published] == want
    # in the order of the timeframes, the alert's own first
    assert [list(a.context["stages"]) for a in published if a.context] == [
        list(w["stages"])
        for w in want  # type: ignore[call-overload]
    ]
    assert {w["bias"] for w in want} == {"bullish", "bearish", "neutral"}


async def test_alerts_carry_the_context_of_the_other_timeframes(redis_client, keyspace) -> None:
    """Through the evaluator: other timeframes stored for the symbol appear in the context, and
    the notifier gets the alert as published."""
    for tf, stage in (("5m", "rallying"), ("1h", "overbought"), ("1d", "rebounding")):
        key = keyspace.indicator_key(1, "BTC-USD", tf, "macd-v")
        await redis_client.set(key, messages.encode(stored_value("BTC-USD", tf, stage)))
    notified: list[Alert] = []
    evaluator = AlertEvaluator(
        store=AlertStateStore(redis_client, stream=keyspace.alert_stream),
        keys=keyspace,
        notify=notified.append,
    )

    events = [closed(c) for c in wave_candles(120)]
    points = macdv_series([e.candle() for e in events], MIN)
    updates = [to_update(e, p) for e, p in zip(events, points, strict=True) if p.macd_v is not None]
    await evaluator.handle(
        [StreamEntry(f"{i}-0", messages.encode(u), 1) for i, u in enumerate(updates)]
    )
    published = await stream_values(redis_client, keyspace.alert_stream, Alert)
    assert published and notified == published
    by_ts = {u.timestamp: u for u in updates}
    for alert in published:
        stages = {
            "1m": by_ts[alert.candle_timestamp].stage,
            "5m": "rallying",
            "1h": "overbought",
            "1d": "rebounding",
        }
        assert alert.context == {"stages": stages, "bias": timeframe_bias(stages).bias}


async def test_an_unreadable_context_value_fails_the_commit_before_any_write(
    redis_client, keyspace
) -> None:
    """A script error must not leave a half-applied batch (a state moved on without its alert
    published would lose the alert): every read comes before the first write."""
    store = AlertStateStore(redis_client, stream=keyspace.alert_stream)
    channel = keyspace.alerts_channel(1)
    items = []
    for symbol in ("A-USD", "B-USD"):
        others = [(tf, keyspace.indicator_key(1, symbol, tf, "macd-v")) for tf in ("5m", "1h")]
        spec = ContextSpec("1m", "rallying", others)
        publication = Publication(messages.encode(an_alert(symbol, "1m", "rallying")), spec)
        state_key = keyspace.alert_state_key(1, symbol, "1m")
        items.append((state_key, channel, "", b"", 1, b"s", [publication]))
    await redis_client.set(keyspace.indicator_key(1, "B-USD", "1h", "macd-v"), b'{"no":"stage"}')
    with pytest.raises(ResponseError):
        await store.commit(items)
    assert await redis_client.exists(keyspace.alert_state_key(1, "A-USD", "1m")) == 0
    assert await redis_client.xlen(keyspace.alert_stream) == 0
