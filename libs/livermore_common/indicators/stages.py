"""Market stage of a MACD-V value and its signal, by DOMAIN.md §5's ordered rules."""

from __future__ import annotations

from typing import Final, Literal

Stage = Literal[
    "unknown",
    "oversold",
    "overbought",
    "rallying",
    "rebounding",
    "reversing",
    "retracing",
    "ranging",
]

STAGES: Final[tuple[Stage, ...]] = (
    "unknown",
    "oversold",
    "overbought",
    "rallying",
    "rebounding",
    "reversing",
    "retracing",
    "ranging",
)


def classify_stage(macd_v: float | None, signal: float | None) -> Stage:
    """First matching rule wins; either input undefined (None or NaN) means `unknown`."""
    m, s = macd_v, signal
    if m is None or s is None or m != m or s != s:
        return "unknown"
    if m < -150:
        return "oversold"
    if m > 150 and m > s:
        return "overbought"
    if 50 < m < 150 and m > s:
        return "rallying"
    if -150 < m < 50 and m > s:
        return "rebounding"
    if -150 < m < -50 and m < s:
        return "reversing"
    if m > -50 and m < s:
        return "retracing"
    if -50 < m < 50:
        return "ranging"
    return "unknown"
