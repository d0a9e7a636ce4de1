"""Checks every venue applies before a number from the wire becomes a candle or a trade."""

from __future__ import annotations

import math
import re

from livermore_common.messages import Candle

# Sizes are summed as integers of 1e-12 units: float sums of decimal strings drift in the last
# digit, and a candle built from trades must equal the venue's own (decimal) volume.
VOLUME_DIGITS = 12
VOLUME_SCALE: int = 1_000_000_000_000  # 10**VOLUME_DIGITS
_DECIMAL = re.compile(r"(\d+)(?:\.(\d*))?")


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


def volume_units(text: str, what: str = "size") -> int:
    """A non-negative decimal string as an exact integer count of 1e-12 units."""
    m = _DECIMAL.fullmatch(text)
    if m is None:
        # Exponent forms and the like: rare, so the float path (checked) is good enough.
        return round(number(text, what) * VOLUME_SCALE)
    whole, frac = m.group(1), m.group(2) or ""
    return int(whole) * VOLUME_SCALE + int((frac + "0" * VOLUME_DIGITS)[:VOLUME_DIGITS])


def units_to_float(units: int) -> float:
    """The correctly rounded float of units / 1e12 (int / int division rounds exactly)."""
    return units / VOLUME_SCALE
