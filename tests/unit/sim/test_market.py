"""The simulated market is deterministic and REST/WS views agree (no servers needed)."""

from __future__ import annotations

from services.sim.candles import binance_kline, binance_series, coinbase_series, traded_bar
from services.sim.config import SimConfig
from services.sim.market import MINUTE_MS, Market, bar_of_trades, merge
from services.sim.universe import build_universe

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def test_same_seed_same_history_in_any_order() -> None:
    a, b = Market("binance", SimConfig(seed=7)), Market("binance", SimConfig(seed=7))
    spec_a, spec_b = a.symbols[3], b.symbols[3]
    minutes = list(range(T0 // MINUTE_MS, T0 // MINUTE_MS + 30))
    forward = [a.minute(spec_a, m) for m in minutes]
    backward = [b.minute(spec_b, m) for m in reversed(minutes)][::-1]
    assert forward == backward


def test_other_seed_other_history() -> None:
    a, b = Market("binance", SimConfig(seed=1)), Market("binance", SimConfig(seed=2))
    m = T0 // MINUTE_MS
    assert [a.minute_bar(a.symbols[0], m + i) for i in range(5)] != [
        b.minute_bar(b.symbols[0], m + i) for i in range(5)
    ]


def test_universe_names_and_zipf_volumes() -> None:
    config = SimConfig(symbols=200)
    cb, bn = build_universe("coinbase", config), build_universe("binance", config)
    assert [s.name for s in cb[:2]] == ["BTC-USD", "ETH-USD"]
    assert [s.name for s in bn[:2]] == ["BTCUSDT", "ETHUSDT"]
    assert cb[-1].name.startswith("SYM") and bn[-1].name.endswith("USDT")
    assert len({s.name for s in bn}) == 200
    # Power law: the top symbol trades orders of magnitude more than the 200th.
    assert bn[0].quote_volume_24h > 1000 * bn[-1].quote_volume_24h
    assert bn[0].quote_volume_24h > 5e8


def _thin() -> tuple[Market, object]:
    market = Market("binance", SimConfig(symbols=200))
    return market, market.symbols[-1]


def test_thin_market_has_empty_minutes_flat_at_previous_close_on_binance() -> None:
    market, spec = _thin()
    first = T0 // MINUTE_MS
    series = binance_series(market, spec, MINUTE_MS, T0, T0 + 299 * MINUTE_MS, T0 + 10**9)
    assert len(series) == 300
    empty = [i for i, (_, bar) in enumerate(series) if bar.volume == 0]
    assert empty, "a thin market must have minutes without trades"
    for i in empty:
        bar = series[i][1]
        previous_close = series[i - 1][1].close if i else market.last_price_before(spec, first)
        assert bar.open == bar.high == bar.low == bar.close == previous_close
        assert bar.trades == 0


def test_coinbase_has_no_candle_for_a_minute_without_trades() -> None:
    market = Market("coinbase", SimConfig(symbols=200))
    spec = market.symbols[-1]
    rows = coinbase_series(market, spec, MINUTE_MS, T0, T0 + 299 * MINUTE_MS, T0 + 10**9)
    assert 0 < len(rows) < 300
    assert all(bar.volume > 0 for _, bar in rows)


def test_candle_from_trades_equals_minute_candle() -> None:
    market = Market("coinbase", SimConfig())
    spec = market.symbols[0]
    for m in range(T0 // MINUTE_MS, T0 // MINUTE_MS + 20):
        data = market.minute(spec, m)
        trades = [t for sl in data.slices if sl for t in sl.trades]
        rebuilt = bar_of_trades(trades, spec.decimals, len(trades))
        assert data.bar is not None
        assert rebuilt[:6] == data.bar[:6]  # OHLC, volume, quote (the count is the venue's)


def test_higher_timeframe_is_aggregation_of_traded_minutes() -> None:
    market = Market("binance", SimConfig())
    spec = market.symbols[1]
    step = 15 * MINUTE_MS
    bar = binance_kline(market, spec, step, T0, T0 + step)
    minutes = [market.minute_bar(spec, T0 // MINUTE_MS + i) for i in range(15)]
    assert bar == merge(b for b in minutes if b is not None)


def test_forming_candle_grows_into_the_closed_one() -> None:
    market = Market("binance", SimConfig())
    spec = market.symbols[0]
    partials = [binance_kline(market, spec, MINUTE_MS, T0, T0 + k * 15_000) for k in (1, 2, 3)]
    final = binance_kline(market, spec, MINUTE_MS, T0, T0 + MINUTE_MS)
    assert partials[0].open == final.open
    assert [p.volume for p in partials] == sorted(p.volume for p in partials)
    assert partials[-1].volume <= final.volume
    assert all(p.high <= final.high and p.low >= final.low for p in partials)


def test_forming_coinbase_candle_counts_only_past_trades() -> None:
    market = Market("coinbase", SimConfig())
    spec = market.symbols[0]
    half = traded_bar(market, spec, MINUTE_MS, T0, T0 + 30_000, by_trade=True)
    full = traded_bar(market, spec, MINUTE_MS, T0, T0 + MINUTE_MS, by_trade=True)
    assert half is not None and full is not None
    assert half.volume < full.volume


def test_same_base_tracks_across_venues() -> None:
    cb, bn = Market("coinbase", SimConfig()), Market("binance", SimConfig())
    m = T0 // MINUTE_MS
    assert cb.log_price(cb.symbols[0], m) == bn.log_price(bn.symbols[0], m)
