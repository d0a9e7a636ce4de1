"""Checks every venue applies before a number from the wire becomes a candle or a trade."""

from __future__ import annotations

import math

from livermore_common.messages import Candle


class InvalidFrame(ValueError):
    """A frame or record that must be dropped (the reason is safe to log)."""


def number(text: str | float | int, what: str) -> float:
    """A finite, non-negative float from a venue's decimal string."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise InvalidFrame(f"{what} is not a number: {str(text)[:40]!r}") from None
    if not math.isfinite(value) or value < 0:
        raise InvalidFrame(f"{what} must be finite and non-negative: {value!r}")
    return value


def checked_candle(
    timestamp: int,
    open: str | float,
    high: str | float,
    low: str | float,
    close: str | float,
    volume: str | float,
) -> Candle:
    """A Candle whose numbers are finite and non-negative, with high >= low.

    Open and close outside [low, high] are accepted: Binance's own documented kline example has
    an open below its low, and repairing venue data is not this layer's business.
    """
    o, h, lo, c = (
        number(open, "open"),
        number(high, "high"),
        number(low, "low"),
        number(close, "close"),
    )
    v = number(volume, "volume")
    if timestamp < 0:
        raise InvalidFrame(f"negative timestamp {timestamp}")
    if h < lo:
        raise InvalidFrame(f"inconsistent OHLC o={o} h={h} l={lo} c={c}")
    return Candle(timestamp=timestamp, open=o, high=h, low=lo, close=c, volume=v)
