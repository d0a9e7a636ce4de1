"""Interval names each venue accepts, mapped to Livermore timeframe names and lengths."""

from __future__ import annotations

from typing import Final

MIN: Final = 60_000

# Binance kline intervals the simulator serves (1s, 3d, 1w and 1M are not simulated).
BINANCE_INTERVALS: Final[dict[str, int]] = {
    "1m": MIN,
    "3m": 3 * MIN,
    "5m": 5 * MIN,
    "15m": 15 * MIN,
    "30m": 30 * MIN,
    "1h": 60 * MIN,
    "2h": 120 * MIN,
    "4h": 240 * MIN,
    "6h": 360 * MIN,
    "8h": 480 * MIN,
    "12h": 720 * MIN,
    "1d": 1440 * MIN,
}

# Coinbase granularity name -> Livermore timeframe name.
COINBASE_GRANULARITIES: Final[dict[str, str]] = {
    "ONE_MINUTE": "1m",
    "FIVE_MINUTE": "5m",
    "FIFTEEN_MINUTE": "15m",
    "THIRTY_MINUTE": "30m",
    "ONE_HOUR": "1h",
    "TWO_HOUR": "2h",
    "FOUR_HOUR": "4h",
    "SIX_HOUR": "6h",
    "ONE_DAY": "1d",
}

TIMEFRAME_MS: Final[dict[str, int]] = dict(BINANCE_INTERVALS)
# The Coinbase `candles` channel streams five-minute buckets only.
COINBASE_WS_TIMEFRAME: Final = "5m"
