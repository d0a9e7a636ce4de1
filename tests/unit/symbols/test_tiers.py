"""Pure tier logic: ranking, exclusion, symbol forming, valuation, threshold, de-dup and merge."""

from __future__ import annotations

import math

import pytest

from livermore_common.exchanges.base import Balance, SymbolVolume
from livermore_common.messages import SymbolEntry, SymbolList
from services.symbols import tiers
from services.symbols.tiers import HeldAsset, MarketIndex


def cb(base: str, quote: str, volume: float) -> SymbolVolume:
    return SymbolVolume(symbol=f"{base}-{quote}", base=base, quote=quote, volume_24h=volume)


def bn(base: str, quote: str, volume: float) -> SymbolVolume:
    return SymbolVolume(symbol=f"{base}{quote}", base=base, quote=quote, volume_24h=volume)


COINBASE = [
    cb("ETH", "USD", 900.0),
    cb("BTC", "USD", 1000.0),
    cb("SOL", "USD", 500.0),
    cb("BTC", "EUR", 400.0),
    cb("ETH", "BTC", 50.0),
    cb("USDT", "USD", 800.0),
    cb("DOGE", "USD", 100.0),
    cb("XYZ", "BTC", 3.0),
]

BINANCE = [
    bn("BTC", "USDT", 5000.0),
    bn("BTC", "FDUSD", 4000.0),
    bn("USDC", "USDT", 3500.0),
    bn("ETH", "USDT", 3000.0),
    bn("BTC", "TRY", 9_000_000.0),  # lira: a big number, not a big market
    bn("SOL", "USDT", 800.0),
    bn("ETH", "BTC", 100.0),
    bn("EUR", "USDT", 700.0),
]


def symbols(markets: list[SymbolVolume]) -> list[str]:
    return [m.symbol for m in markets]


# ---- Tier 1 ranking -----------------------------------------------------------------------------


def test_tier1_is_ordered_by_quote_volume_with_symbol_tie_break() -> None:
    universe = [cb("AAA", "USD", 10.0), cb("CCC", "USD", 30.0), cb("BBB", "USD", 10.0)]
    assert symbols(tiers.rank_tier1(universe)) == ["CCC-USD", "AAA-USD", "BBB-USD"]


def test_tier1_leaves_out_non_usd_quotes_pegged_bases_and_second_markets_of_a_base() -> None:
    ranked = tiers.rank_tier1(BINANCE)
    # BTCTRY (lira volume), BTCFDUSD (second BTC market), USDCUSDT and EURUSDT (pegged bases),
    # ETHBTC (BTC volume) are all out.
    assert symbols(ranked) == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


def test_tier1_options_keep_every_market_when_asked() -> None:
    ranked = tiers.rank_tier1(BINANCE, one_per_base=False, exclude_pegged_bases=False)
    assert symbols(ranked) == [
        "BTCUSDT", "BTCFDUSD", "USDCUSDT", "ETHUSDT", "SOLUSDT", "EURUSDT",
    ]  # fmt: skip
    assert symbols(tiers.rank_tier1(BINANCE, quotes=()))[0] == "BTCTRY"


def test_top_n_cuts_the_ranking_and_zero_means_none() -> None:
    ranked = tiers.rank_tier1(COINBASE)
    assert symbols(tiers.top_n(ranked, 2)) == ["BTC-USD", "ETH-USD"]
    assert tiers.top_n(ranked, 0) == []
    assert len(tiers.top_n(ranked, 100)) == len(ranked)


def test_duplicate_and_unusable_volumes_are_cleaned() -> None:
    universe = [
        cb("BTC", "USD", 10.0),
        cb("BTC", "USD", 20.0),  # the venue listed it twice: the higher volume counts once
        cb("NAN", "USD", math.nan),
        cb("NEG", "USD", -5.0),
        cb("INF", "USD", math.inf),
    ]
    ranked = tiers.rank_tier1(universe)
    assert [(m.symbol, m.volume_24h) for m in ranked] == [("BTC-USD", 20.0)]


def test_rank_map_is_one_based() -> None:
    assert tiers.rank_map(tiers.rank_tier1(COINBASE))["BTC-USD"] == 1
    assert tiers.rank_map(tiers.rank_tier1(COINBASE))["DOGE-USD"] == 4


# ---- exclusion ----------------------------------------------------------------------------------


@pytest.mark.parametrize("asset", ["USDT", "usdc", "DAI", "BUSD", "FDUSD", "TUSD", "PYUSD", "USD",
                                   "EUR", "gbp"])  # fmt: skip
def test_stablecoins_and_fiat_are_excluded(asset: str) -> None:
    assert tiers.is_excluded_asset(asset)


@pytest.mark.parametrize("asset", ["BTC", "eth", "SOL", "USDTX"])
def test_crypto_assets_are_not_excluded(asset: str) -> None:
    assert not tiers.is_excluded_asset(asset)


# ---- symbol forming -----------------------------------------------------------------------------


def test_symbols_are_formed_in_each_venues_native_form() -> None:
    coinbase, binance = MarketIndex(COINBASE), MarketIndex(BINANCE)
    assert coinbase.form_symbol("BTC").symbol == "BTC-USD"  # type: ignore[union-attr]
    assert binance.form_symbol("btc").symbol == "BTCUSDT"  # type: ignore[union-attr]


def test_forming_follows_the_quote_preference_then_the_busiest_market() -> None:
    index = MarketIndex(COINBASE)
    assert index.form_symbol("BTC", ("EUR", "USD")).symbol == "BTC-EUR"  # type: ignore[union-attr]
    # XYZ trades only against BTC, which is in the default preference.
    assert index.form_symbol("XYZ").symbol == "XYZ-BTC"  # type: ignore[union-attr]
    # Not in the preference at all: the busiest market still names it.
    assert index.form_symbol("XYZ", ("USD",)).symbol == "XYZ-BTC"  # type: ignore[union-attr]
    assert index.form_symbol("NOPE") is None


def test_usd_market_prefers_usd_like_quotes() -> None:
    index = MarketIndex(BINANCE)
    assert index.usd_market("BTC").symbol == "BTCUSDT"  # type: ignore[union-attr]
    assert index.usd_market("BTC", ("FDUSD",)).symbol == "BTCFDUSD"  # type: ignore[union-attr]
    assert MarketIndex(COINBASE).usd_market("XYZ") is None


# ---- valuation and the threshold ----------------------------------------------------------------


def test_total_balances_sums_assets_and_drops_zero_and_bad_quantities() -> None:
    balances = [
        Balance(asset="btc", quantity=0.25),
        Balance(asset="BTC", quantity=0.25),
        Balance(asset="ETH", quantity=0.0),
        Balance(asset="SOL", quantity=math.nan),
    ]
    assert tiers.total_balances(balances) == {"BTC": 0.5}


def test_symbols_to_price_includes_a_bridge_for_non_usd_quotes() -> None:
    index = MarketIndex(COINBASE)
    needed = tiers.symbols_to_price(["BTC", "XYZ", "USDT", "NOPE"], index)
    assert needed == {"BTC-USD", "XYZ-BTC"}  # XYZ-BTC, bridged by BTC-USD


def test_usd_value_direct_bridged_pegged_and_unknown() -> None:
    index = MarketIndex(COINBASE)
    prices = {"BTC-USD": 60_000.0, "XYZ-BTC": 0.0001}
    assert tiers.usd_value("BTC", 0.5, index, prices) == 30_000.0
    assert tiers.usd_value("XYZ", 10.0, index, prices) == pytest.approx(60.0)
    assert tiers.usd_value("USDT", 12.5, index, prices) == 12.5
    assert tiers.usd_value("ETH", 1.0, index, prices) is None  # no price fetched
    assert tiers.usd_value("NOPE", 1.0, index, prices) is None


def held(user: int, asset: str, value: float | None) -> HeldAsset:
    return HeldAsset(user_id=user, asset=asset, quantity=1.0, value_usd=value)


def test_tier2_holders_apply_threshold_exclusion_and_forming() -> None:
    index = MarketIndex(BINANCE)
    holders = tiers.tier2_holders(
        [
            held(1, "BTC", 30_000.0),
            held(2, "BTC", 10.0),  # exactly the threshold: kept
            held(3, "BTC", 9.99),  # dust
            held(1, "SOL", 50.0),
            held(1, "USDT", 10_000.0),  # stablecoin
            held(2, "EUR", 500.0),  # fiat
            held(2, "ETH", None),  # unpriced
            held(2, "NOPE", 1000.0),  # not traded here
        ],
        index,
        min_value_usd=10.0,
    )
    assert holders == {"BTCUSDT": frozenset({1, 2}), "SOLUSDT": frozenset({1})}


# ---- de-dup and merge ---------------------------------------------------------------------------


def test_merge_serves_held_tier1_symbols_from_shared_keys_and_the_rest_as_tier2() -> None:
    ranked = tiers.rank_tier1(COINBASE)  # BTC, ETH, SOL, DOGE
    tier1 = tiers.top_n(ranked, 2)
    holders = {"BTC-USD": {7, 3}, "DOGE-USD": {3, 9, 3}, "XYZ-BTC": {5}, "ETH-BTC": set()}
    merged = tiers.merge(1, tier1, holders, ranks=tiers.rank_map(ranked), updated_at=123)
    assert merged == SymbolList(
        exchange_id=1,
        updated_at=123,
        symbols=(
            SymbolEntry(symbol="BTC-USD", tier=1, volume_rank=1),  # held, yet shared only
            SymbolEntry(symbol="ETH-USD", tier=1, volume_rank=2),
            SymbolEntry(symbol="DOGE-USD", tier=2, user_ids=(3, 9), volume_rank=4),
            SymbolEntry(symbol="XYZ-BTC", tier=2, user_ids=(5,), volume_rank=None),
        ),
    )
    assert len({e.symbol for e in merged.symbols}) == len(merged.symbols)


def test_same_symbols_ignores_the_timestamp_only() -> None:
    tier1 = tiers.top_n(tiers.rank_tier1(COINBASE), 2)
    a = tiers.merge(1, tier1, {}, ranks={}, updated_at=1)
    b = tiers.merge(1, tier1, {}, ranks={}, updated_at=2)
    c = tiers.merge(1, tier1, {"SOL-USD": {4}}, ranks={}, updated_at=2)
    assert tiers.same_symbols(a, b)
    assert not tiers.same_symbols(a, c)
    assert not tiers.same_symbols(None, a)
    assert not tiers.same_symbols(tiers.merge(2, tier1, {}, ranks={}, updated_at=1), a)
