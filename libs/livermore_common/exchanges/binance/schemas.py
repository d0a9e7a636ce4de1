"""Binance Spot JSON as msgspec Structs, with Binance's own (single-letter) field names.

Prices and quantities arrive as strings and stay strings here; parse.py converts and validates.
Unknown fields are ignored. Field names such as `E`/`e` and `T`/`t` are distinct on the wire and
stay distinct here, hence the N815 waivers.
"""

from __future__ import annotations

from typing import Any

import msgspec

# ---- WebSocket: market data ---------------------------------------------------------------------


class Kline(msgspec.Struct, frozen=True, gc=False):
    t: int  # bucket open time (ms)
    T: int  # bucket close time (ms, inclusive)
    s: str
    i: str  # interval
    o: str
    c: str
    h: str
    l: str  # noqa: E741  (Binance's name for the low)
    v: str  # base volume
    x: bool  # is this kline closed?
    f: int = -1
    L: int = -1
    n: int = 0
    q: str = "0"
    V: str = "0"
    Q: str = "0"
    B: str = "0"


class KlineEvent(msgspec.Struct, frozen=True, gc=False):
    e: str  # "kline"
    E: int  # event time (ms)
    s: str
    k: Kline


class CombinedKline(msgspec.Struct, frozen=True, gc=False):
    """`{stream, data}` as the combined endpoint (/stream?streams=) wraps every payload."""

    stream: str
    data: KlineEvent


class LiveKline(msgspec.Struct, frozen=True, gc=False):
    """`Kline` as the live feed decodes it: the same fields, with the five numbers the candle
    needs read as floats by msgspec (its `strict=False` decoder turns Binance's decimal strings
    into the same floats as `float()`, in C: about a microsecond less per frame)."""

    t: int
    T: int
    s: str
    i: str
    o: float
    c: float
    h: float
    l: float  # noqa: E741
    v: float
    x: bool
    f: int = -1
    L: int = -1
    n: int = 0
    q: str = "0"
    V: str = "0"
    Q: str = "0"
    B: str = "0"


class LiveKlineEvent(msgspec.Struct, frozen=True, gc=False):
    e: str
    E: int
    s: str
    k: LiveKline


class LiveCombinedKline(msgspec.Struct, frozen=True, gc=False):
    stream: str
    data: LiveKlineEvent


class GenericEvent(msgspec.Struct, frozen=True):
    e: str
    E: int | None = None


class WsErrorDetail(msgspec.Struct, frozen=True):
    code: int | None = None
    msg: str = ""


class Envelope(msgspec.Struct, frozen=True, omit_defaults=True):
    """Anything else on a combined connection: wrapped events, responses and errors."""

    stream: str | None = None
    data: msgspec.Raw = msgspec.Raw()  # empty when absent (Raw cannot sit in a union)
    result: Any = None
    id: int | str | None = None
    error: WsErrorDetail | None = None
    e: str | None = None  # an unwrapped event (serverShutdown may come either way)
    E: int | None = None


# ---- WebSocket: requests and responses ----------------------------------------------------------


class WsRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    method: str  # SUBSCRIBE | UNSUBSCRIBE | LIST_SUBSCRIPTIONS | SET_PROPERTY | GET_PROPERTY
    params: list[Any] | None = None
    id: int


class WsResponse(msgspec.Struct, frozen=True):
    id: int | str | None
    result: Any = None


class WsErrorResponse(msgspec.Struct, frozen=True):
    error: WsErrorDetail
    id: int | str | None = None


# ---- REST ---------------------------------------------------------------------------------------


class RestKline(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One row of GET /api/v3/klines (an array; names from Binance's documentation)."""

    open_time: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    close_time: int
    quote_volume: str = "0"
    trades: int = 0
    taker_buy_base_volume: str = "0"
    taker_buy_quote_volume: str = "0"


class RateLimit(msgspec.Struct, frozen=True):
    rateLimitType: str = ""
    interval: str = ""
    intervalNum: int = 1
    limit: int = 0


class SymbolInfo(msgspec.Struct, frozen=True):
    symbol: str
    status: str
    baseAsset: str
    quoteAsset: str
    isSpotTradingAllowed: bool = True
    permissions: list[str] = []
    permissionSets: list[list[str]] = []


class ExchangeInfoResponse(msgspec.Struct, frozen=True):
    timezone: str = "UTC"
    serverTime: int = 0
    rateLimits: list[RateLimit] = []
    symbols: list[SymbolInfo] = []


class Ticker24h(msgspec.Struct, frozen=True, gc=False):
    symbol: str
    quoteVolume: str = "0"
    volume: str = "0"
    lastPrice: str = "0"
    openTime: int = 0
    closeTime: int = 0
    count: int = 0


class ServerTimeResponse(msgspec.Struct, frozen=True):
    serverTime: int


class AssetBalance(msgspec.Struct, frozen=True):
    asset: str
    free: str
    locked: str = "0"


class AccountResponse(msgspec.Struct, frozen=True):
    balances: list[AssetBalance] = []
    accountType: str = ""
    canTrade: bool = True
    updateTime: int = 0


class RestError(msgspec.Struct, frozen=True):
    code: int
    msg: str
