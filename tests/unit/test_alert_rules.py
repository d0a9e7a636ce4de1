"""Alert rules of DOMAIN.md §6: the example table, cooldowns, excursions, staleness, ids."""

from __future__ import annotations

import hashlib
import re

import pytest

from livermore_common.messages import IndicatorUpdate
from services.alerts.rules import (
    AlertDecision,
    AlertState,
    alert_id,
    crossed_levels,
    evaluate,
    evaluate_update,
    is_stale,
    timeframe_bias,
    to_alert,
)

MIN = 60_000
T0 = 1_704_067_200_000


class Series:
    """Drives one series of 1m candles; the exchange clock is each candle's close unless given."""

    def __init__(self, interval: int = MIN) -> None:
        self.state = AlertState()
        self.interval = interval
        self.ts = T0

    def push(
        self,
        macd_v: float | None,
        histogram: float | None = 0.0,
        *,
        at: int | None = None,
        late_by: int = 0,
    ) -> list[str]:
        self.ts = self.ts + self.interval if at is None else at
        self.state, decisions = evaluate(
            self.state,
            macd_v=macd_v,
            histogram=histogram,
            candle_timestamp=self.ts,
            interval_ms=self.interval,
            exchange_time=self.ts + self.interval + late_by,
        )
        return [d.label for d in decisions]


EXAMPLES = [
    ((-140, -160, 0.0), ["level_-150"]),
    ((-140, -260, 0.0), ["level_-250"]),
    ((140, 210, 0.0), ["level_200"]),
    ((-180, -170, 9.0), ["reversal_oversold"]),
    ((-180, -170, 8.0), []),
    ((200, 190, -5.8), ["reversal_overbought"]),
    ((-140, -160, 20.0), ["level_-150"]),
]


@pytest.mark.parametrize(("case", "labels"), EXAMPLES, ids=[str(c) for c, _ in EXAMPLES])
def test_domain_example_table(case: tuple[float, float, float], labels: list[str]) -> None:
    prev, cur, hist = case
    series = Series()
    assert series.push(prev, hist) == []  # the first value never alerts
    assert series.push(cur, hist) == labels


def test_first_value_is_silent_even_when_extreme() -> None:
    series = Series()
    assert series.push(-390.0, 100.0) == []
    assert series.state.prev_macd_v == -390.0


@pytest.mark.parametrize(
    ("prev", "cur", "expected"),
    [
        (-150, -160, [("down", -150)]),  # prev >= L counts
        (-140, -150, []),  # L > cur does not hold at equality
        (-140, -410, [("down", -400)]),  # the deepest crossed downwards
        (410, -410, [("down", -400)]),
        (-160, -140, []),  # towards zero: no level alert
        (-260, -140, []),
        (150, 151, [("up", 150)]),  # prev <= L counts
        (140, 150, []),
        (140, 390, [("up", 350)]),  # the highest crossed upwards
        (-410, 410, [("up", 400)]),
        (200, 190, []),
        (390, 140, []),
        (100, -100, []),
    ],
)
def test_crossed_levels(prev: float, cur: float, expected: list[tuple[str, int]]) -> None:
    assert crossed_levels(prev, cur) == expected


def test_only_moves_away_from_zero_raise_level_alerts() -> None:
    series = Series()
    series.push(-260.0)
    assert series.push(-140.0) == []
    series.push(140.0)
    assert series.push(390.0) == ["level_350"]
    assert series.push(140.0) == []


def test_level_cooldown_is_300s_of_candle_time_per_label() -> None:
    series = Series()
    series.push(-140.0)
    assert series.push(-160.0) == ["level_-150"]  # at T0 + 2 min
    fired_at = series.ts
    series.push(-140.0)  # up-cross of -150 at +1 min: same label, cooling down
    assert series.push(-160.0) == []  # +2 min
    assert series.push(-210.0) == ["level_-200"]  # another label is not held back
    series.push(-140.0, at=fired_at + 299_999 - MIN)
    assert series.push(-160.0, at=fired_at + 299_999) == []
    series.push(-140.0, at=fired_at + 300_000 + MIN)
    assert series.push(-160.0, at=fired_at + 300_000 + 2 * MIN) == ["level_-150"]


def test_cooldown_ends_exactly_at_300s() -> None:
    series = Series()
    series.push(-140.0)
    assert series.push(-160.0) == ["level_-150"]
    fired_at = series.ts
    series.push(-140.0, at=fired_at + 150_000)
    assert series.push(-160.0, at=fired_at + 300_000) == ["level_-150"]


def test_one_reversal_per_excursion_until_a_level_alert_rearms() -> None:
    series = Series()
    series.push(-140.0)
    assert series.push(-180.0) == ["level_-150"]
    assert series.push(-170.0, 9.0) == ["reversal_oversold"]
    # Ten minutes later (cooldown long over), still the same excursion: no second reversal.
    for _ in range(10):
        assert series.push(-175.0, 0.0) == []
    assert series.push(-170.0, 9.0) == []
    # Deeper: a level alert re-arms the reversal.
    assert series.push(-210.0, 0.0) == ["level_-200"]
    assert series.push(-190.0, 10.0) == ["reversal_oversold"]


def test_overbought_excursion_rearm() -> None:
    series = Series()
    series.push(140.0)
    assert series.push(210.0) == ["level_200"]
    assert series.push(200.0, -6.1) == ["reversal_overbought"]
    for _ in range(6):
        assert series.push(195.0) == []
    assert series.push(190.0, -6.1) == []  # same excursion, cooldown over: still disarmed
    # Negative-side crossings do not re-arm the overbought reversal.
    series.push(-140.0)
    assert series.push(-160.0) == ["level_-150"]
    series.push(180.0)  # up-cross of 150, a level alert: re-arms
    assert series.push(175.0, -6.0) == ["reversal_overbought"]


def test_negative_crossing_does_not_rearm_overbought() -> None:
    series = Series()
    series.push(160.0)
    assert series.push(170.0, -6.0) == ["reversal_overbought"]
    series.push(-140.0)
    assert series.push(-160.0) == ["level_-150"]
    assert not series.state.overbought_armed and series.state.oversold_armed


def test_crossing_held_back_by_cooldown_still_rearms() -> None:
    series = Series()
    series.push(-140.0)
    assert series.push(-160.0) == ["level_-150"]
    assert series.push(-170.0, 9.0) == ["reversal_oversold"]
    assert series.push(-140.0) == []  # back above -150: the excursion ends
    assert series.push(-160.0) == []  # a new one: level_-150 is cooling down, but it re-arms
    for _ in range(5):
        series.push(-165.0)
    assert series.push(-160.0, 9.0) == ["reversal_oversold"]


def test_without_a_new_crossing_the_reversal_stays_disarmed() -> None:
    series = Series()
    series.push(-140.0)
    series.push(-160.0)
    assert series.push(-170.0, 9.0) == ["reversal_oversold"]
    for _ in range(8):
        series.push(-165.0)
    assert series.push(-160.0, 9.0) == []


def test_reversal_cooldown() -> None:
    series = Series()
    series.push(-180.0)
    assert series.push(-170.0, 9.0) == ["reversal_oversold"]
    assert series.push(-210.0) == ["level_-200"]  # re-armed at +1 min
    assert series.push(-200.0, 11.0) == []  # +2 min: the reversal is cooling down
    series.push(-205.0, at=T0 + 2 * MIN + 300_000 - MIN)
    assert series.push(-200.0, 11.0, at=T0 + 2 * MIN + 300_000) == ["reversal_oversold"]


def test_level_and_reversal_in_one_update() -> None:
    series = Series()
    series.push(-240.0)
    assert series.push(-260.0, 20.0) == ["level_-250", "reversal_oversold"]


def test_stale_candles_update_prev_but_raise_nothing() -> None:
    series = Series()
    series.push(-140.0)
    assert series.push(-160.0, late_by=2 * MIN + 1) == []
    assert series.state.prev_macd_v == -160.0
    # The next fresh value compares with the stale one: no crossing from -160 to -170.
    assert series.push(-170.0) == []
    # Exactly two intervals late is still fresh.
    assert series.push(-210.0, late_by=2 * MIN) == ["level_-200"]


def test_stale_history_does_not_start_cooldowns() -> None:
    series = Series()
    series.push(-140.0, late_by=10 * MIN)
    assert series.push(-160.0, late_by=10 * MIN) == []
    series.push(-140.0)
    assert series.push(-160.0) == ["level_-150"]


def test_is_stale_boundary() -> None:
    assert not is_stale(T0, MIN, T0 + MIN + 2 * MIN)
    assert is_stale(T0, MIN, T0 + MIN + 2 * MIN + 1)
    assert not is_stale(T0, MIN, 0)


def test_replayed_or_older_update_changes_nothing() -> None:
    series = Series()
    series.push(-140.0)
    assert series.push(-160.0) == ["level_-150"]
    before = series.state
    assert series.push(-160.0, at=series.ts) == []
    assert series.push(-300.0, at=series.ts - MIN) == []
    assert series.state == before


def test_undefined_value_makes_the_next_one_a_first_value() -> None:
    series = Series()
    series.push(-140.0)
    assert series.push(None) == []
    assert series.push(-160.0) == []
    assert series.push(-210.0) == ["level_-200"]


def test_same_alerts_whatever_the_exchange_clock_speed() -> None:
    values = [-140, -160, -140, -160, -170, -200, -210, -190, -140, -160, -170, -120, 160, 200]
    hist = [0, 0, 0, 0, 9, 0, 0, 12, 0, 0, 9, 0, 0, -7]

    def decisions(late_by: int) -> list[tuple[str, int]]:
        state = AlertState()
        out = []
        for i, (v, h) in enumerate(zip(values, hist)):
            ts = T0 + i * MIN
            state, raised = evaluate(
                state,
                macd_v=float(v),
                histogram=float(h),
                candle_timestamp=ts,
                interval_ms=MIN,
                exchange_time=ts + MIN + late_by,
            )
            out.extend((d.label, d.candle_timestamp) for d in raised)
        return out

    real_time = decisions(0)
    assert len(real_time) >= 4
    assert decisions(MIN) == real_time
    assert decisions(2 * MIN) == real_time


def test_state_round_trip_continues_identically() -> None:
    values = [-140.0, -160.0, -170.0, -140.0, -210.0, -190.0, -150.0, 160.0, 210.0, 190.0]
    hist = [0.0, 0.0, 9.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, -7.0]
    straight, restored = Series(), Series()
    for v, h in zip(values, hist):
        restored.state = AlertState.from_bytes(restored.state.to_bytes())
        assert restored.push(v, h) == straight.push(v, h)
        assert restored.state == straight.state
    assert len(straight.state.to_bytes()) < 200


def test_decision_fields() -> None:
    state, _ = evaluate(
        AlertState(), macd_v=-140.0, histogram=1.0, candle_timestamp=T0, interval_ms=MIN,
        exchange_time=T0 + MIN,
    )  # fmt: skip
    _, [decision] = evaluate(
        state, macd_v=-160.0, histogram=2.0, candle_timestamp=T0 + MIN, interval_ms=MIN,
        exchange_time=T0 + 2 * MIN + 500,
    )  # fmt: skip
    assert decision == AlertDecision(
        label="level_-150",
        kind="level",
        direction="down",
        level=-150,
        trigger_value=-160.0,
        histogram=2.0,
        candle_timestamp=T0 + MIN,
        triggered_at=T0 + 2 * MIN + 500,
    )


def test_alert_id_is_deterministic_and_distinguishes_every_part() -> None:
    base = (1, "BTC-USD", "5m", "level_-150", T0)
    ident = alert_id(*base)
    assert re.fullmatch(r"[0-9a-f]{32}", ident)
    assert alert_id(*base) == ident
    variants = [
        (2, "BTC-USD", "5m", "level_-150", T0),
        (1, "ETH-USD", "5m", "level_-150", T0),
        (1, "BTC-USD", "1m", "level_-150", T0),
        (1, "BTC-USD", "5m", "level_-200", T0),
        (1, "BTC-USD", "5m", "level_-150", T0 + 1),
    ]
    assert len({alert_id(*v) for v in variants} | {ident}) == 6
    # Documented canonical form: SHA-256 of the compact JSON array, first 32 hex digits.
    canonical = '[1,"BTC-USD","5m","level_-150",1704067200000]'
    assert ident == hashlib.sha256(canonical.encode()).hexdigest()[:32]


def update(macd_v: float, histogram: float, ts: int, exchange_time: int) -> IndicatorUpdate:
    return IndicatorUpdate(
        exchange_id=1,
        exchange="coinbase",
        symbol="BTC-USD",
        timeframe="5m",
        type="macd-v",
        timestamp=ts,
        macd_v=macd_v,
        signal=macd_v - histogram,
        histogram=histogram,
        fast_ema=1.0,
        slow_ema=1.0,
        atr=1.0,
        stage="oversold",
        seeded=True,
        n_eff=100,
        gap_ratio=0.0,
        liquidity="high",
        price=42_000.5,
        exchange_time=exchange_time,
    )


def test_evaluate_update_and_payload() -> None:
    five = 5 * MIN
    state, _ = evaluate_update(AlertState(), update(-140.0, 1.0, T0, T0 + five))
    # Two 5m intervals late is still fresh for a 5m candle (it would be stale for 1m).
    msg = update(-160.0, 2.0, T0 + five, T0 + 2 * five + 2 * five)
    state, [decision] = evaluate_update(state, msg)
    alert = to_alert(decision, msg, context={"bias": "bearish"})
    assert alert.id == alert_id(1, "BTC-USD", "5m", "level_-150", T0 + five)
    assert (alert.source_exchange_id, alert.source_exchange_name) == (1, "coinbase")
    assert (alert.symbol, alert.timeframe, alert.alert_type) == ("BTC-USD", "5m", "macdv")
    assert (alert.trigger_label, alert.trigger_value) == ("level_-150", -160.0)
    assert (alert.signal, alert.histogram, alert.stage, alert.price) == (
        -162.0, 2.0, "oversold", 42_000.5
    )  # fmt: skip
    assert (alert.candle_timestamp, alert.triggered_at) == (T0 + five, T0 + 4 * five)
    assert alert.context == {"bias": "bearish"}


@pytest.mark.parametrize(
    ("stages", "bias", "bull", "bear"),
    [
        ({}, "neutral", 0, 0),
        ({"1m": "oversold"}, "bullish", 1, 0),
        ({"1m": "rallying", "1d": "retracing"}, "bearish", 1, 6),
        ({"5m": "rebounding", "15m": "reversing"}, "neutral", 2, 3),  # 3 is not > 1.5 x 2
        ({"5m": "rebounding", "15m": "rallying", "1h": "overbought"}, "neutral", 5, 4),
        ({"1h": "rallying", "4h": "rebounding", "1d": "overbought"}, "neutral", 9, 6),  # 9 = 1.5x6
        ({"1m": "overbought", "4h": "rallying", "1d": "rebounding"}, "bullish", 11, 1),
        ({"1m": "ranging", "1d": "unknown", "30m": "oversold"}, "neutral", 0, 0),
    ],
)
def test_timeframe_bias(stages: dict[str, str], bias: str, bull: int, bear: int) -> None:
    result = timeframe_bias(stages)
    assert (result.bias, result.bullish_weight, result.bearish_weight) == (bias, bull, bear)
