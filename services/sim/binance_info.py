"""Bodies of Binance's listing endpoints: exchangeInfo, 24h tickers, account."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.sim.config import SimConfig
from services.sim.formats import fixed8, price8
from services.sim.market import Market
from services.sim.stats import day_stats
from services.sim.universe import SymbolSpec

RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]
ORDER_TYPES = [
    "LIMIT",
    "LIMIT_MAKER",
    "MARKET",
    "STOP_LOSS",
    "STOP_LOSS_LIMIT",
    "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
]


def _symbol_info(spec: SymbolSpec) -> dict[str, Any]:
    tick = price8(1, spec.decimals)
    return {
        "symbol": spec.name,
        "status": "TRADING",
        "baseAsset": spec.base,
        "baseAssetPrecision": 8,
        "quoteAsset": spec.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ORDER_TYPES,
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "opoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "amendAllowed": True,
        "pegInstructionsAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": spec.index < 20,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": tick,
                "maxPrice": "1000000.00000000",
                "tickSize": tick,
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00000001",
                "maxQty": "9000000.00000000",
                "stepSize": "0.00000001",
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def exchange_info(specs: Sequence[SymbolSpec], now_ms: int, config: SimConfig) -> dict[str, Any]:
    limits = [dict(r) for r in RATE_LIMITS]
    limits[0]["limit"] = config.binance_weight_limit_1m
    return {
        "timezone": "UTC",
        "serverTime": now_ms,
        "rateLimits": limits,
        "exchangeFilters": [],
        "symbols": [_symbol_info(s) for s in specs],
    }


def ticker_24h(market: Market, spec: SymbolSpec, now_ms: int) -> dict[str, Any]:
    st = day_stats(market, spec, now_ms)
    d = spec.decimals
    change = st.last - st.open
    pct = 100.0 * change / st.open if st.open else 0.0
    vwap = int(st.quote_volume / max(st.volume, 1) * 1e16)
    first_id = (now_ms - 86_400_000) // 60_000 * 100_000
    return {
        "symbol": spec.name,
        "priceChange": price8(change, d) if change >= 0 else "-" + price8(-change, d),
        "priceChangePercent": f"{pct:.3f}",
        "weightedAvgPrice": fixed8(vwap),
        "prevClosePrice": price8(st.open, d),
        "lastPrice": price8(st.last, d),
        "lastQty": "0.01000000",
        "bidPrice": price8(max(st.last - 1, 1), d),
        "bidQty": "1.00000000",
        "askPrice": price8(st.last + 1, d),
        "askQty": "1.00000000",
        "openPrice": price8(st.open, d),
        "highPrice": price8(st.high, d),
        "lowPrice": price8(st.low, d),
        "volume": fixed8(st.volume),
        "quoteVolume": fixed8(int(st.quote_volume * 1e8)),
        "openTime": now_ms - 86_400_000,
        "closeTime": now_ms,
        "firstId": first_id,
        "lastId": first_id + st.count - 1,
        "count": st.count,
    }


# Fixed demo holdings (Tier 2 tests): a few majors, one thin symbol, some quote currency.
HOLDINGS = (("BTC", 50_000_000), ("ETH", 400_000_000), ("SOL", 3_000_000_000))


def account_body(market: Market, now_ms: int) -> dict[str, Any]:
    balances = [{"asset": a, "free": fixed8(q), "locked": "0.00000000"} for a, q in HOLDINGS]
    if len(market.symbols) > 1:
        thin = market.symbols[-1]
        balances.append({"asset": thin.base, "free": "1000.00000000", "locked": "0.00000000"})
    balances.append({"asset": "USDT", "free": "10000.00000000", "locked": "0.00000000"})
    return {
        "makerCommission": 10,
        "takerCommission": 10,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": "0.00100000",
            "taker": "0.00100000",
            "buyer": "0.00000000",
            "seller": "0.00000000",
        },
        "canTrade": True,
        "canWithdraw": True,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": now_ms,
        "accountType": "SPOT",
        "balances": balances,
        "permissions": ["SPOT"],
        "uid": 354937868,
    }
