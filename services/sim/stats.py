"""Rolling 24-hour statistics of a simulated symbol (cheap approximations for listings)."""

from __future__ import annotations

import math

from services.sim.market import MINUTE_MS, Market
from services.sim.rand import gauss_of, mix
from services.sim.universe import SymbolSpec


class DayStats:
    __slots__ = ("count", "high", "last", "low", "open", "quote_volume", "volume")

    def __init__(
        self,
        *,
        last: int,
        open_: int,
        high: int,
        low: int,
        volume: int,
        quote_volume: float,
        count: int,
    ) -> None:
        self.last, self.open, self.high, self.low = last, open_, high, low
        self.volume, self.quote_volume, self.count = volume, quote_volume, count


def day_stats(market: Market, spec: SymbolSpec, now_ms: int) -> DayStats:
    """Last price exactly; open/high/low from the hourly price path; volumes from the nominal
    24h volume with a small day-to-day variation (summing 1440 minutes per call would be slow)."""
    minute = now_ms // MINUTE_MS
    last = market.last_price_before(spec, minute)  # last closed minute: no peeking ahead
    hours = [market.log_price(spec, minute - 60 * h) for h in range(25)]
    open_ = market.ticks(spec, hours[-1])
    prices = [market.ticks(spec, x) for x in hours] + [last]
    day = minute // 1440
    quote = spec.quote_volume_24h * math.exp(0.1 * gauss_of(mix(market.seed, spec.index, day)))
    volume = int(quote / (last / 10**spec.decimals) * 1e8)
    count = int(spec.trades_per_minute * 1440)
    return DayStats(
        last=last,
        open_=open_,
        high=max(prices),
        low=min(prices),
        volume=volume,
        quote_volume=quote,
        count=count,
    )
