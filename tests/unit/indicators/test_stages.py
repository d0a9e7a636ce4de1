"""Stage classification: the table of DOMAIN.md §5 and the rule order's edges."""

from __future__ import annotations

import math

import pytest

from livermore_common.indicators.stages import classify_stage

TABLE = [
    ((-160, -140), "oversold"),
    ((-200, -150), "oversold"),
    ((160, 140), "overbought"),
    ((100, 80), "rallying"),
    ((60, 50), "rallying"),
    ((30, 20), "rebounding"),
    ((-100, -120), "rebounding"),
    ((-100, -80), "reversing"),
    ((-60, -40), "reversing"),
    ((100, 120), "retracing"),
    ((0, 20), "retracing"),
    ((-40, -20), "retracing"),
    ((0, 0), "ranging"),
    ((25, 25), "ranging"),
]


@pytest.mark.parametrize(("pair", "stage"), TABLE, ids=[f"{p}" for p, _ in TABLE])
def test_stage_table(pair: tuple[float, float], stage: str) -> None:
    assert classify_stage(*pair) == stage


@pytest.mark.parametrize(
    ("m", "s", "stage"),
    [
        (None, 0.0, "unknown"),
        (10.0, None, "unknown"),
        (math.nan, 0.0, "unknown"),
        (-170.0, None, "unknown"),
        (160.0, 170.0, "retracing"),  # above 150 but under its signal: not overbought
        (150.0, 100.0, "unknown"),  # exactly 150 above the signal matches no rule
        (-150.0, -150.0, "unknown"),
        (50.0, 50.0, "unknown"),
        (-50.0, -60.0, "rebounding"),
    ],
)
def test_rule_order_edges(m: float | None, s: float | None, stage: str) -> None:
    assert classify_stage(m, s) == stage
