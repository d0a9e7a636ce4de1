"""Bodies of Coinbase's listing endpoints: products and accounts (shaped like the fixtures)."""

from __future__ import annotations

from typing import Any

from services.sim.formats import price_trimmed, trimmed
from services.sim.market import Market
from services.sim.stats import day_stats
from services.sim.universe import SymbolSpec


def product_body(market: Market, spec: SymbolSpec, now_ms: int) -> dict[str, Any]:
    st = day_stats(market, spec, now_ms)
    d = spec.decimals
    tick = price_trimmed(1, d)
    pct = 100.0 * (st.last - st.open) / st.open if st.open else 0.0
    return {
        "product_id": spec.name,
        "price": price_trimmed(st.last, d),
        "price_percentage_change_24h": f"{pct:.14f}",
        "volume_24h": trimmed(st.volume),
        "volume_percentage_change_24h": "0",
        "base_increment": "0.00000001",
        "quote_increment": tick,
        "quote_min_size": "1",
        "quote_max_size": "150000000",
        "base_min_size": "0.00000001",
        "base_max_size": "100000000",
        "base_name": spec.base_name,
        "quote_name": "US Dollar",
        "watched": False,
        "is_disabled": False,
        "new": False,
        "status": "online",
        "cancel_only": False,
        "limit_only": False,
        "post_only": False,
        "trading_disabled": False,
        "auction_mode": False,
        "product_type": "SPOT",
        "quote_currency_id": spec.quote,
        "base_currency_id": spec.base,
        "fcm_trading_session_details": None,
        "mid_market_price": "",
        "alias": "",
        "alias_to": [],
        "base_display_symbol": spec.base,
        "quote_display_symbol": spec.quote,
        "view_only": False,
        "price_increment": tick,
        "display_name": spec.name,
        "product_venue": "CBE",
        "approximate_quote_24h_volume": f"{st.quote_volume:.2f}",
        "new_at": "2023-01-01T00:00:00Z",
        "market_cap": "",
        "base_cbrn": "",
        "quote_cbrn": "",
        "product_cbrn": "",
        "icon_color": "",
        "icon_url": "",
        "display_name_overwrite": "",
        "is_alpha_testing": False,
        "about_description": "",
        "best_bid_price": "",
        "best_ask_price": "",
    }


# Fixed demo holdings (Tier 2 tests), in 1e-8 units.
HOLDINGS = (("BTC", 50_000_000, "CRYPTO"), ("ETH", 400_000_000, "CRYPTO"))


def _account(index: int, currency: str, name: str, value: str, kind: str) -> dict[str, Any]:
    return {
        "uuid": f"00000000-0000-4000-8000-{index:012d}",
        "name": name,
        "currency": currency,
        "available_balance": {"value": value, "currency": currency},
        "default": index == 0,
        "active": True,
        "created_at": "2021-05-31T09:59:59Z",
        "updated_at": "2024-01-15T10:30:00Z",
        "deleted_at": None,
        "type": kind,
        "ready": True,
        "hold": {"value": "0", "currency": currency},
        "retail_portfolio_id": "portfolio-sim",
    }


def accounts_body(market: Market) -> dict[str, Any]:
    rows = [(c, f"{c} Wallet", trimmed(q), k) for c, q, k in HOLDINGS]
    if len(market.symbols) > 1:
        thin = market.symbols[-1].base
        rows.append((thin, f"{thin} Wallet", "1000", "CRYPTO"))
    rows.append(("USD", "USD Wallet", "10000.5", "FIAT"))
    accounts = [_account(i, *row) for i, row in enumerate(rows)]
    return {"accounts": accounts, "has_next": False, "cursor": "", "size": len(accounts)}
