"""SMA / EMA / RMA and true range against DOMAIN.md §5's reference lists."""

from __future__ import annotations

import math

import pytest

from livermore_common.indicators.ma import Ema, Rma, ema, rma, sma
from livermore_common.indicators.volatility import true_range


def assert_series(actual: list[float], expected: list[float]) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        if math.isnan(e):
            assert math.isnan(a)
        else:
            assert a == pytest.approx(e, abs=1e-6)


def test_sma_reference() -> None:
    assert_series(sma([1, 2, 3, 4, 5], 3), [2, 3, 4])


def test_sma_shorter_than_period_is_empty() -> None:
    assert sma([1, 2], 3) == []


def test_ema_reference() -> None:
    assert_series(ema([10, 11, 12, 13, 14, 15], 3), [math.nan, math.nan, 11, 12, 13, 14])


def test_rma_reference() -> None:
    expected = [math.nan, math.nan, 11, 11.666667, 12.444444, 13.296296]
    assert_series(rma([10, 11, 12, 13, 14, 15], 3), expected)


@pytest.mark.parametrize(
    ("high", "low", "prev_close", "expected"),
    [(110, 100, 105, 10), (115, 110, 100, 15), (105, 100, 110, 10), (105, 100, None, 5)],
)
def test_true_range_reference(
    high: float, low: float, prev_close: float | None, expected: float
) -> None:
    assert true_range(high, low, prev_close) == pytest.approx(expected, abs=1e-9)


def test_missing_values_are_skipped_while_seeding_and_carried_after() -> None:
    nan = math.nan
    out = ema([nan, 10, 11, nan, 12, 13], 3)
    assert_series(out, [nan, nan, nan, nan, 11, 12])
    out = rma([1, 2, 3, nan, 4], 3)
    assert_series(out, [nan, nan, 2, 2, (2 * 2 + 4) / 3])


@pytest.mark.parametrize("cls", [Ema, Rma])
def test_incremental_matches_batch(cls: type[Ema]) -> None:
    values = [float((i * 37) % 11) for i in range(50)]
    state = cls(period=5)
    incremental = [state.update(v) for v in values]
    batch = ema(values, 5) if cls is Ema else rma(values, 5)
    assert_series([math.nan if v is None else v for v in incremental], batch)


def test_period_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Ema(period=0)
    with pytest.raises(ValueError):
        sma([1.0], 0)
