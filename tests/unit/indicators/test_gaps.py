"""Gap filling with synthetic bars."""

from __future__ import annotations

import pytest

from livermore_common.indicators.gaps import fill_gaps, mark_synthetic
from livermore_common.messages import Candle

STEP = 300_000


def bar(ts: int, close: float) -> Candle:
    return Candle(
        timestamp=ts, open=close - 1, high=close + 1, low=close - 2, close=close, volume=5
    )


def test_missing_buckets_become_synthetic_bars_at_previous_close() -> None:
    candles = [bar(0, 10), bar(STEP, 11), bar(4 * STEP, 12)]
    filled = fill_gaps(candles, STEP)
    assert [c.timestamp for c in filled.candles] == [0, STEP, 2 * STEP, 3 * STEP, 4 * STEP]
    assert filled.synthetic == [False, False, True, True, False]
    assert filled.synthetic_count == 2
    for synthetic in filled.candles[2:4]:
        assert (synthetic.open, synthetic.high, synthetic.low, synthetic.close) == (11, 11, 11, 11)
        assert synthetic.volume == 0


def test_no_gaps_no_change() -> None:
    candles = [bar(i * STEP, 10 + i) for i in range(5)]
    assert fill_gaps(candles, STEP) == (candles, [False] * 5)
    assert fill_gaps([], STEP) == ([], [])


def test_unordered_or_duplicate_input_is_refused() -> None:
    with pytest.raises(ValueError):
        fill_gaps([bar(STEP, 1), bar(0, 2)], STEP)
    with pytest.raises(ValueError):
        fill_gaps([bar(0, 1), bar(0, 2)], STEP)
    with pytest.raises(ValueError):
        fill_gaps([bar(0, 1)], 0)


def test_explicit_flags_must_match_length() -> None:
    with pytest.raises(ValueError):
        mark_synthetic([bar(0, 1)], [True, False])
