"""Timeframe names, their lengths, and UTC bucket alignment."""

from __future__ import annotations

from typing import Final

MINUTE_MS: Final = 60_000

TIMEFRAME_MS: Final[dict[str, int]] = {
    "1m": MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "2h": 120 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "6h": 360 * MINUTE_MS,
    "1d": 1440 * MINUTE_MS,
}

DEFAULT_TIMEFRAMES: Final[tuple[str, ...]] = ("1m", "5m", "15m", "1h", "4h", "1d")


def interval_ms(timeframe: str) -> int:
    """Length of one bucket in milliseconds; a clear error for an unknown timeframe."""
    try:
        return TIMEFRAME_MS[timeframe]
    except KeyError:
        known = ", ".join(TIMEFRAME_MS)
        raise ValueError(f"unknown timeframe {timeframe!r} (known: {known})") from None


def bucket_start(ts_ms: int, timeframe: str) -> int:
    """Start of the UTC-aligned bucket of `timeframe` containing `ts_ms`."""
    step = interval_ms(timeframe)
    return ts_ms - ts_ms % step


def parse_timeframes(text: str) -> tuple[str, ...]:
    """Parse a comma-separated list, validating each name and ordering shortest first."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    for name in names:
        interval_ms(name)
    return tuple(sorted(set(names), key=interval_ms))
