"""MACD-V: Vectors A, S and T of DOMAIN.md §5, and incremental == batch."""

from __future__ import annotations

import pytest

from livermore_common.indicators.gaps import fill_gaps
from livermore_common.indicators.macdv import (
    REASON_LOW_ACTIVITY,
    MacdVPoint,
    MacdVState,
    OutOfOrderCandleError,
    liquidity_of,
    macdv_series,
)
from livermore_common.indicators.volatility import atr, true_ranges
from livermore_common.messages import Candle
from tests.unit.indicators.vectors import STEP, T0, random_gappy, vector_a, vector_s, vector_t

TOL = 1e-6


def approx(value: float) -> object:
    return pytest.approx(value, abs=TOL)


def test_vector_a_at_25() -> None:
    p = macdv_series(vector_a())[25]
    assert p.fast_ema == approx(104.140773)
    assert p.slow_ema == approx(107.438569)
    assert p.atr == approx(3.941144)
    assert p.macd_v == approx(-83.676122)
    assert p.signal is None and p.histogram is None


def test_vector_a_first_values() -> None:
    points = macdv_series(vector_a())
    assert [p.macd_v is not None for p in points].index(True) == 25
    assert [p.signal is not None for p in points].index(True) == 33
    assert not points[24].seeded and points[25].seeded


def test_vector_a_at_33() -> None:
    p = macdv_series(vector_a())[33]
    assert p.macd_v == approx(29.298063)
    assert p.signal == approx(-35.307920)
    assert p.histogram == approx(64.605983)


def test_vector_a_at_59() -> None:
    p = macdv_series(vector_a())[59]
    assert p.fast_ema == approx(120.331189)
    assert p.slow_ema == approx(120.080315)
    assert p.atr == approx(4.064792)
    assert p.macd_v == approx(6.171883)
    assert p.signal == approx(18.577464)
    assert p.histogram == approx(-12.405581)
    assert p.stage == "retracing"
    assert (p.n_eff, p.gap_ratio, p.liquidity, p.reason) == (60, 0.0, "high", None)


def test_vector_s() -> None:
    bars, flags = vector_s()
    points = macdv_series(bars, synthetic=flags)
    last = points[59]
    assert last.n_eff == 48
    assert [p.atr is not None for p in points].index(True) == 31
    assert points[31].atr == approx(4.214105)
    assert last.atr == approx(4.091833)
    assert last.macd_v == approx(3.259588)
    assert last.signal == approx(18.993503)
    assert last.gap_ratio == pytest.approx(0.2)
    assert last.liquidity == "medium"
    assert points[30].seeded is False and points[30].reason == REASON_LOW_ACTIVITY
    assert points[30].macd_v is None


def test_vector_s_atr_carries_over_synthetic_bars() -> None:
    bars, flags = vector_s()
    values = atr(bars, 26, flags)
    trs = true_ranges(bars, flags)
    for i in (34, 39, 44, 59 - 5):
        assert flags[i] and trs[i] != trs[i]  # NaN: undefined true range
        assert values[i] == values[i - 1]


def test_vector_s_through_gap_filling() -> None:
    """The same series expressed the live way: the synthetic buckets are simply missing.

    Bar 59 is synthetic, so it only appears once a later real candle (bar 60) arrives.
    """
    bars, flags = vector_s()
    stored = [c for c, synthetic in zip(bars, flags) if not synthetic]
    stored.append(Candle(timestamp=T0 + 60 * STEP, open=1, high=2, low=0.5, close=1.5, volume=1))
    filled = fill_gaps(stored, STEP)
    assert filled.synthetic[:60] == flags
    assert filled.candles[:60] == bars
    point = macdv_series(stored, STEP)[59]
    assert (point.n_eff, point.bars, point.synthetic) == (48, 60, True)
    assert point.macd_v == approx(3.259588)
    assert point.signal == approx(18.993503)


def test_vector_t_up() -> None:
    p = macdv_series(vector_t(1.005))[59]
    assert p.macd_v == approx(177.584670)
    assert p.signal == approx(177.312117)
    assert p.histogram == approx(0.272553)
    assert p.atr == approx(2.429788)
    assert p.stage == "overbought"


def test_vector_t_down() -> None:
    p = macdv_series(vector_t(0.995))[59]
    assert p.macd_v == approx(-171.820791)
    assert p.signal == approx(-172.167742)
    assert p.stage == "oversold"


def assert_points_equal(incremental: list[MacdVPoint], batch: list[MacdVPoint]) -> None:
    assert len(incremental) == len(batch)
    for a, b in zip(incremental, batch):
        assert (a.timestamp, a.stage, a.seeded, a.n_eff, a.bars, a.reason) == (
            b.timestamp, b.stage, b.seeded, b.n_eff, b.bars, b.reason
        )  # fmt: skip
        for field in ("macd_v", "signal", "histogram", "fast_ema", "slow_ema", "atr"):
            x, y = getattr(a, field), getattr(b, field)
            assert (x is None) == (y is None), field
            if x is not None:
                assert x == pytest.approx(y, rel=1e-12, abs=1e-9), field


@pytest.mark.parametrize(
    "candles", [vector_a(), vector_t(1.005), vector_t(0.995)], ids=["A", "T-up", "T-down"]
)
def test_incremental_equals_batch(candles: list[Candle]) -> None:
    state = MacdVState(interval_ms=STEP)
    assert_points_equal([state.update(c) for c in candles], macdv_series(candles, STEP))


def test_incremental_equals_batch_on_vector_s_with_flags() -> None:
    bars, flags = vector_s()
    state = MacdVState()
    incremental = [state.step(c, synthetic=s) for c, s in zip(bars, flags)]
    assert_points_equal(incremental, macdv_series(bars, synthetic=flags))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_fills_gaps_like_batch(seed: int) -> None:
    candles = random_gappy(seed)
    state = MacdVState(interval_ms=STEP)
    incremental = [state.update(c) for c in candles]
    batch = [p for p in macdv_series(candles, STEP) if not p.synthetic]
    assert_points_equal(incremental, batch)
    assert incremental[-1].gap_ratio > 0.05  # the series really has gaps


def test_serialized_state_continues_identically() -> None:
    candles = random_gappy(7)
    straight = MacdVState(interval_ms=STEP)
    expected = [straight.update(c) for c in candles]
    state = MacdVState(interval_ms=STEP)
    points = []
    for i, candle in enumerate(candles):
        if i % 37 == 0:
            data = state.to_bytes()
            assert len(data) < 200
            state = MacdVState.from_bytes(data)
        points.append(state.update(candle))
    assert points == expected
    assert MacdVState.from_bytes(straight.to_bytes()) == straight


def test_feed_returns_last_point() -> None:
    candles = vector_a()
    state = MacdVState(interval_ms=STEP)
    assert state.feed(candles) == macdv_series(candles)[-1]
    assert MacdVState().feed([]) is None


def test_out_of_order_and_duplicate_candles_are_refused() -> None:
    candles = vector_a()[:5]
    for state in (MacdVState(interval_ms=STEP), MacdVState()):
        state.feed(candles)
        before = state.to_bytes()
        with pytest.raises(OutOfOrderCandleError):
            state.update(candles[-1])
        with pytest.raises(OutOfOrderCandleError):
            state.step(candles[0])
        assert state.to_bytes() == before


def test_cannot_seed_in_a_thin_market() -> None:
    # One trade every third bucket: 20 observed bars out of 58, fewer than the 26 the ATR needs.
    candles = [c for i, c in enumerate(vector_a()) if i % 3 == 0]
    last = MacdVState(interval_ms=STEP).feed(candles)
    assert last is not None
    assert (last.seeded, last.macd_v, last.reason) == (False, None, REASON_LOW_ACTIVITY)
    assert last.n_eff == 20 and last.liquidity == "low"
    assert last.stage == "unknown"


def test_flat_market_has_no_value() -> None:
    flat = [
        Candle(timestamp=T0 + i * STEP, open=1, high=1, low=1, close=1, volume=1) for i in range(40)
    ]
    last = MacdVState().feed(flat)
    assert last is not None and last.seeded and last.atr == 0.0 and last.macd_v is None


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [(0.0, "high"), (0.19, "high"), (0.2, "medium"), (0.49, "medium"), (0.5, "low")],
)
def test_liquidity_thresholds(ratio: float, expected: str) -> None:
    assert liquidity_of(ratio) == expected
