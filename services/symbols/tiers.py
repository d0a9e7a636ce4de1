"""Pure symbol-tier logic: Tier 1 ranking, holding values, exclusions, symbol forming, merge.

    universe (every spot market of a venue, from `adapter.top_symbols`)
      ├─ rank_tier1  → USD-like quotes only (quote volumes in one unit), one market per base,
      │               stable/fiat bases out, highest 24h quote volume first → top N = Tier 1
      └─ MarketIndex → base → its markets; `form_symbol("BTC")` = BTC-USD on Coinbase, BTCUSDT on
                      Binance (first quote of the preference list the venue lists)
    holdings (users' balances with USD values) → tier2_holders → {symbol: user ids}
    merge(tier 1, holders) → SymbolList: Tier 1 first (shared keys), then held symbols that are not
                             Tier 1 (tier 2, with their holders' user ids)   (SYM-04)

No I/O here; the service and `holdings.py` feed these functions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import msgspec

from livermore_common.exchanges.base import Balance, SymbolVolume
from livermore_common.messages import SymbolEntry, SymbolList

# Assets pegged to a currency: never Tier 2 (nothing to watch), never a Tier 1 base.
STABLECOINS = frozenset(
    {
        "USDT", "USDC", "DAI", "BUSD", "FDUSD", "TUSD", "USDP", "PYUSD", "USDE", "USDS", "GUSD",
        "FRAX", "LUSD", "USDD", "USD1", "RLUSD", "SUSD", "UST", "EURC", "EURT", "EURI", "AEUR",
    }
)  # fmt: skip
FIAT = frozenset(
    {
        "USD", "EUR", "GBP", "JPY", "AUD", "CAD", "CHF", "TRY", "BRL", "ARS", "MXN", "ZAR", "NGN",
        "UAH", "PLN", "RON", "CZK", "SEK", "NOK", "DKK", "KRW", "IDR", "INR", "RUB", "HKD", "SGD",
        "NZD", "COP", "VND", "PHP", "THB", "KZT",
    }
)  # fmt: skip
# Quotes worth one US dollar: their quote volumes are comparable and their prices are USD values.
USD_QUOTES = frozenset(
    {"USD", "USDT", "USDC", "FDUSD", "BUSD", "DAI", "TUSD", "USDP", "PYUSD", "USDE", "USDS"}
)
# Which market names a held asset: the first quote the venue lists wins.
DEFAULT_QUOTE_PREFERENCE = ("USD", "USDT", "USDC", "FDUSD", "BUSD", "EUR", "BTC", "ETH")


def is_excluded_asset(asset: str) -> bool:
    """Stablecoins and fiat are neither watched for holders nor ranked as Tier 1 bases."""
    return asset.upper() in STABLECOINS or asset.upper() in FIAT


def _clean(universe: Iterable[SymbolVolume]) -> list[SymbolVolume]:
    """One entry per symbol (its highest volume), finite non-negative volumes, best first."""
    best: dict[str, SymbolVolume] = {}
    for market in universe:
        volume = market.volume_24h
        if not math.isfinite(volume) or volume < 0:
            continue
        seen = best.get(market.symbol)
        if seen is None or volume > seen.volume_24h:
            best[market.symbol] = market
    return sorted(best.values(), key=lambda m: (-m.volume_24h, m.symbol))


def rank_tier1(
    universe: Iterable[SymbolVolume],
    *,
    quotes: Iterable[str] = USD_QUOTES,
    one_per_base: bool = True,
    exclude_pegged_bases: bool = True,
) -> list[SymbolVolume]:
    """Eligible markets by 24h quote volume, highest first (Tier 1 = the first N).

    Only `quotes` count because quote volumes in different currencies are not comparable
    (a TRY volume is a much larger number than the same trade in USDT).
    """
    wanted = {q.upper() for q in quotes}
    ranked: list[SymbolVolume] = []
    bases: set[str] = set()
    for market in _clean(universe):
        base = market.base.upper()
        if wanted and market.quote.upper() not in wanted:
            continue
        if exclude_pegged_bases and is_excluded_asset(base):
            continue
        if one_per_base and base in bases:
            continue
        bases.add(base)
        ranked.append(market)
    return ranked


def top_n(ranked: Sequence[SymbolVolume], n: int) -> list[SymbolVolume]:
    return list(ranked[: max(0, n)])


class MarketIndex:
    """Every market of one venue by base asset, each base's markets best volume first."""

    def __init__(self, universe: Iterable[SymbolVolume]) -> None:
        self._by_base: dict[str, list[SymbolVolume]] = {}
        self._by_symbol: dict[str, SymbolVolume] = {}
        for market in _clean(universe):
            self._by_base.setdefault(market.base.upper(), []).append(market)
            self._by_symbol[market.symbol] = market

    def __len__(self) -> int:
        return len(self._by_symbol)

    def get(self, symbol: str) -> SymbolVolume | None:
        return self._by_symbol.get(symbol)

    def markets(self, asset: str) -> list[SymbolVolume]:
        return list(self._by_base.get(asset.upper(), ()))

    def market(self, asset: str, quotes: Sequence[str]) -> SymbolVolume | None:
        """The asset's market in the first of `quotes` the venue lists."""
        by_quote = {m.quote.upper(): m for m in reversed(self.markets(asset))}
        for quote in quotes:
            found = by_quote.get(quote.upper())
            if found is not None:
                return found
        return None

    def form_symbol(
        self, asset: str, preference: Sequence[str] = DEFAULT_QUOTE_PREFERENCE
    ) -> SymbolVolume | None:
        """The market that names a held asset in the venue's native form (BTC → BTC-USD or
        BTCUSDT): the first preferred quote listed, else the asset's busiest market."""
        found = self.market(asset, preference)
        if found is not None:
            return found
        markets = self.markets(asset)
        return markets[0] if markets else None

    def usd_market(
        self, asset: str, preference: Sequence[str] = DEFAULT_QUOTE_PREFERENCE
    ) -> SymbolVolume | None:
        """The asset's market in a USD-like quote (its price is a USD value), if any."""
        ordered = [q for q in preference if q.upper() in USD_QUOTES]
        ordered += sorted(USD_QUOTES - {q.upper() for q in ordered})
        return self.market(asset, ordered)


# ---- holdings ---------------------------------------------------------------------------------


def total_balances(balances: Iterable[Balance]) -> dict[str, float]:
    """Quantity per asset (upper case), summing an asset reported by several accounts."""
    totals: dict[str, float] = {}
    for balance in balances:
        if math.isfinite(balance.quantity) and balance.quantity > 0:
            asset = balance.asset.upper()
            totals[asset] = totals.get(asset, 0.0) + balance.quantity
    return totals


def symbols_to_price(
    assets: Iterable[str], index: MarketIndex, preference: Sequence[str] = DEFAULT_QUOTE_PREFERENCE
) -> set[str]:
    """The markets whose last prices value these assets in USD."""
    needed: set[str] = set()
    for asset in assets:
        if asset.upper() in USD_QUOTES:
            continue
        direct = index.usd_market(asset, preference)
        if direct is not None:
            needed.add(direct.symbol)
            continue
        market = index.form_symbol(asset, preference)
        if market is None:
            continue
        needed.add(market.symbol)
        bridge = index.usd_market(market.quote, preference)
        if bridge is not None:
            needed.add(bridge.symbol)
    return needed


def usd_value(
    asset: str,
    quantity: float,
    index: MarketIndex,
    prices: Mapping[str, float],
    preference: Sequence[str] = DEFAULT_QUOTE_PREFERENCE,
) -> float | None:
    """quantity x price in USD (through the quote's own USD market if needed); None = unknown."""
    if asset.upper() in USD_QUOTES:
        return quantity
    direct = index.usd_market(asset, preference)
    if direct is not None and direct.symbol in prices:
        return quantity * prices[direct.symbol]
    market = index.form_symbol(asset, preference)
    if market is None or market.symbol not in prices:
        return None
    if market.quote.upper() in USD_QUOTES:
        return quantity * prices[market.symbol]
    bridge = index.usd_market(market.quote, preference)
    if bridge is None or bridge.symbol not in prices:
        return None
    return quantity * prices[market.symbol] * prices[bridge.symbol]


class HeldAsset(msgspec.Struct, frozen=True, kw_only=True):
    """One user's holding of one asset on one venue, as stored in `positions`."""

    user_id: int
    asset: str
    quantity: float
    value_usd: float | None


def tier2_holders(
    held: Iterable[HeldAsset],
    index: MarketIndex,
    *,
    min_value_usd: float,
    preference: Sequence[str] = DEFAULT_QUOTE_PREFERENCE,
) -> dict[str, frozenset[int]]:
    """Held symbols worth watching → who holds them: stablecoins, fiat, unpriced holdings,
    holdings below the threshold and assets the venue does not trade are left out."""
    holders: dict[str, set[int]] = {}
    for item in held:
        if is_excluded_asset(item.asset) or item.value_usd is None:
            continue
        if item.value_usd < min_value_usd:
            continue
        market = index.form_symbol(item.asset, preference)
        if market is not None:
            holders.setdefault(market.symbol, set()).add(item.user_id)
    return {symbol: frozenset(users) for symbol, users in holders.items()}


# ---- the merged list --------------------------------------------------------------------------


def merge(
    exchange_id: int,
    tier1: Sequence[SymbolVolume],
    holders: Mapping[str, Iterable[int]],
    *,
    ranks: Mapping[str, int],
    updated_at: int,
) -> SymbolList:
    """Tier 1 in rank order (shared keys, no user ids, even when held: SYM-04), then the held
    symbols that are not Tier 1 as tier 2 with their holders, best volume rank first."""
    shared = {m.symbol for m in tier1}
    entries = [
        SymbolEntry(symbol=m.symbol, tier=1, volume_rank=ranks.get(m.symbol, i + 1))
        for i, m in enumerate(tier1)
    ]
    overflow = sorted(
        (s for s in holders if s not in shared and holders[s]),
        key=lambda s: (ranks.get(s, math.inf), s),
    )
    entries += [
        SymbolEntry(
            symbol=s, tier=2, user_ids=tuple(sorted(set(holders[s]))), volume_rank=ranks.get(s)
        )
        for s in overflow
    ]
    return SymbolList(exchange_id=exchange_id, updated_at=updated_at, symbols=tuple(entries))


def same_symbols(old: SymbolList | None, new: SymbolList) -> bool:
    """True when nothing an ingestor acts on changed (the timestamp alone does not count)."""
    return old is not None and old.exchange_id == new.exchange_id and old.symbols == new.symbols


def rank_map(ranked: Sequence[SymbolVolume]) -> dict[str, int]:
    """symbol → 1-based volume rank among the Tier 1-eligible markets."""
    return {m.symbol: i + 1 for i, m in enumerate(ranked)}
