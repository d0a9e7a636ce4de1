"""Candles as each venue shows them, built from the market's minutes (pure).

Binance: every interval has a kline; one without trades is flat at the last trade price with zero
volume. Its forming kline holds the 15-second slices completed so far. Coinbase: a bucket without
trades does not exist; its forming candle holds the trades up to now. Higher timeframes aggregate
the traded minutes of their bucket (open = first trade, close = last), as the venues do.
"""

from __future__ import annotations

from services.sim.market import MINUTE_MS, SLICE_MS, Bar, Market, bar_of_trades, flat, merge
from services.sim.universe import SymbolSpec


def _forming_minute(
    market: Market, spec: SymbolSpec, minute: int, now_ms: int, by_trade: bool
) -> Bar | None:
    data = market.minute(spec, minute)
    start = minute * MINUTE_MS
    if by_trade:
        # Millisecond resolution, like the clock and the trade feed's windows.
        end_us = (now_ms + 1) * 1000
        trades = [
            t for sl in data.slices if sl is not None for t in sl.trades if t.time_us < end_us
        ]
        return bar_of_trades(trades, spec.decimals, len(trades)) if trades else None
    done = [
        sl.bar
        for i, sl in enumerate(data.slices)
        if sl is not None and start + (i + 1) * SLICE_MS <= now_ms
    ]
    return merge(done)


def traded_bar(
    market: Market, spec: SymbolSpec, tf_ms: int, start_ms: int, now_ms: int, *, by_trade: bool
) -> Bar | None:
    """Aggregate of the traded minutes of a bucket as known at `now_ms`; None if no trade yet."""
    first = start_ms // MINUTE_MS
    end = (start_ms + tf_ms) // MINUTE_MS
    closed_end = min(end, now_ms // MINUTE_MS)  # minutes that have ended by now
    if closed_end - first > 1:
        bar = market.closed_prefix(spec, first, closed_end, tf_ms)
    else:
        bar = merge(b for m in range(first, closed_end) if (b := market.minute_bar(spec, m)))
    if closed_end < end and closed_end >= first:
        forming = _forming_minute(market, spec, closed_end, now_ms, by_trade)
        if forming is not None:
            bar = forming if bar is None else merge((bar, forming))
    return bar


def binance_series(
    market: Market, spec: SymbolSpec, tf_ms: int, first_ms: int, last_ms: int, now_ms: int
) -> list[tuple[int, Bar]]:
    """Klines with open times first_ms..last_ms (aligned, inclusive), forming one included."""
    out: list[tuple[int, Bar]] = []
    last_close: int | None = None
    for start in range(first_ms, last_ms + 1, tf_ms):
        if start > now_ms:
            break
        bar = traded_bar(market, spec, tf_ms, start, now_ms, by_trade=False)
        if bar is None:
            if last_close is None:
                last_close = market.last_price_before(spec, start // MINUTE_MS)
            bar = flat(last_close)
        last_close = bar.close
        out.append((start, bar))
    return out


def binance_kline(market: Market, spec: SymbolSpec, tf_ms: int, start_ms: int, now_ms: int) -> Bar:
    bar = traded_bar(market, spec, tf_ms, start_ms, now_ms, by_trade=False)
    if bar is None:
        bar = flat(market.last_price_before(spec, start_ms // MINUTE_MS))
    return bar


def coinbase_series(
    market: Market, spec: SymbolSpec, tf_ms: int, first_ms: int, last_ms: int, now_ms: int
) -> list[tuple[int, Bar]]:
    """Candles with starts first_ms..last_ms (inclusive) that have trades, oldest first."""
    out: list[tuple[int, Bar]] = []
    for start in range(first_ms, last_ms + 1, tf_ms):
        if start > now_ms:
            break
        bar = traded_bar(market, spec, tf_ms, start, now_ms, by_trade=True)
        if bar is not None:
            out.append((start, bar))
    return out
