"""How the venues spell numbers and times on the wire."""

from __future__ import annotations

import time

E8 = 100_000_000


def fixed8(units: int) -> str:
    """1e-8 units as Binance writes every decimal: exactly eight places ("0.35270000")."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), E8)
    return f"{sign}{whole}.{frac:08d}"


def price8(ticks: int, decimals: int) -> str:
    return fixed8(ticks * 10 ** (8 - decimals))


def trimmed(units: int, decimals: int = 8) -> str:
    """Coinbase style: no trailing zeros ("66312.4", "355.82896243", "1")."""
    scale = 10**decimals
    whole, frac = divmod(units, scale)
    if frac == 0:
        return str(whole)
    return f"{whole}.{frac:0{decimals}d}".rstrip("0")


def price_trimmed(ticks: int, decimals: int) -> str:
    return trimmed(ticks, decimals)


def rfc3339(epoch_s: float, digits: int = 9) -> str:
    """`2023-06-09T20:19:35.39625135Z`: Go's RFC3339Nano (trailing zeros trimmed)."""
    whole = int(epoch_s)
    frac = round((epoch_s - whole) * 10**digits)
    if frac >= 10**digits:
        whole, frac = whole + 1, 0
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    if frac == 0:
        return base + "Z"
    return f"{base}.{frac:0{digits}d}".rstrip("0") + "Z"


def rfc3339_us(time_us: int) -> str:
    """Trade times: microseconds, always six digits (`2026-04-07T14:30:02.789012Z`)."""
    whole, us = divmod(time_us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{us:06d}Z"


def go_time(epoch_s: float, uptime_s: float) -> str:
    """Heartbeat `current_time`: Go's time.String() with its monotonic reading."""
    whole = int(epoch_s)
    ns = int((epoch_s - whole) * 1e9)
    base = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(whole))
    return f"{base}.{ns:09d} +0000 UTC m=+{uptime_s:.9f}"
