"""Ground truth: which closed candles the simulator served, and what each one is.

Candles are pure functions of the market, so the truth keeps only *which* buckets were served
(final WebSocket frames, closed REST rows) and recomputes values on demand; `expected()` gives the
same values for any bucket whether it was served or not.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from livermore_common.messages import Candle
from services.sim.candles import binance_kline, traded_bar
from services.sim.formats import fixed8, price8
from services.sim.intervals import TIMEFRAME_MS
from services.sim.market import Bar, Market
from services.sim.universe import SymbolSpec


def to_candle(start_ms: int, bar: Bar, decimals: int) -> Candle:
    """The candle a client parsing our strings gets (float of the very same decimal strings)."""
    return Candle(
        timestamp=start_ms,
        open=float(price8(bar.open, decimals)),
        high=float(price8(bar.high, decimals)),
        low=float(price8(bar.low, decimals)),
        close=float(price8(bar.close, decimals)),
        volume=float(fixed8(bar.volume)),
    )


class Truth:
    def __init__(self, markets: dict[str, Market]) -> None:
        self._markets = markets
        self._served: dict[tuple[str, str, str], set[int]] = defaultdict(set)

    def record(self, exchange: str, symbol: str, timeframe: str, start_ms: int) -> None:
        self._served[(exchange, symbol, timeframe)].add(start_ms)

    def recorder(self, exchange: str, symbol: str, timeframe: str) -> Callable[[int], None]:
        """`record` for one series, as a bound method (for a writer recording every minute)."""
        return self._served[(exchange, symbol, timeframe)].add

    def record_many(
        self, exchange: str, symbol: str, timeframe: str, starts: Iterable[int]
    ) -> None:
        self._served[(exchange, symbol, timeframe)].update(starts)

    def served(self, exchange: str, symbol: str, timeframe: str) -> list[int]:
        return sorted(self._served.get((exchange, symbol, timeframe), ()))

    def series(self) -> list[tuple[str, str, str]]:
        return sorted(self._served)

    def candles(
        self, exchange: str, symbol: str, timeframe: str, start_ms: int = 0, end_ms: int = 2**62
    ) -> list[Candle]:
        """Served closed candles with start_ms <= timestamp < end_ms, ascending."""
        starts = [s for s in self.served(exchange, symbol, timeframe) if start_ms <= s < end_ms]
        return [c for s in starts if (c := self.expected_one(exchange, symbol, timeframe, s))]

    def expected(
        self, exchange: str, symbol: str, timeframe: str, start_ms: int, end_ms: int
    ) -> list[Candle]:
        """Recomputed closed candles in [start_ms, end_ms), served or not, per venue semantics."""
        step = TIMEFRAME_MS[timeframe]
        first = start_ms + (-start_ms) % step
        out = []
        for s in range(first, end_ms, step):
            candle = self.expected_one(exchange, symbol, timeframe, s)
            if candle is not None:
                out.append(candle)
        return out

    def expected_one(
        self, exchange: str, symbol: str, timeframe: str, start_ms: int
    ) -> Candle | None:
        market = self._markets[exchange]
        spec: SymbolSpec = market.by_name[symbol]
        step = TIMEFRAME_MS[timeframe]
        closed_at = start_ms + step  # values of a closed bucket never change after this
        if exchange == "binance":
            bar: Bar | None = binance_kline(market, spec, step, start_ms, closed_at)
        else:
            bar = traded_bar(market, spec, step, start_ms, closed_at, by_trade=True)
        return None if bar is None else to_candle(start_ms, bar, spec.decimals)
