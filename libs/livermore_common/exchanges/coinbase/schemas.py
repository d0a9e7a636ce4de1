"""Coinbase Advanced Trade JSON as msgspec Structs, with Coinbase's own field names.

Numbers arrive as strings and stay strings here (parse.py converts and validates them). Unknown
fields are ignored so additions on Coinbase's side do not break decoding. WebSocket messages are a
union tagged by `channel`; errors ({"type": "error"}) have no channel and decode separately.
"""

from __future__ import annotations

from typing import Literal

import msgspec

# ---- WebSocket: requests ------------------------------------------------------------------------


class SubscribeRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Sent to (un)subscribe ONE channel; `heartbeats` carries no product_ids."""

    type: Literal["subscribe", "unsubscribe"]
    channel: str
    product_ids: list[str] | None = None
    jwt: str | None = None


# ---- WebSocket: messages ------------------------------------------------------------------------


class WsCandle(msgspec.Struct, frozen=True, gc=False):
    start: str  # bucket start, epoch seconds
    high: str
    low: str
    open: str
    close: str
    volume: str
    product_id: str


class CandlesEvent(msgspec.Struct, frozen=True):
    type: str  # "snapshot" | "update"
    candles: list[WsCandle] = []


class WsTrade(msgspec.Struct, frozen=True, gc=False):
    trade_id: str
    product_id: str
    price: str
    size: str
    side: str
    time: str  # RFC 3339 with up to nanoseconds


class MarketTradesEvent(msgspec.Struct, frozen=True):
    type: str
    trades: list[WsTrade] = []


class HeartbeatEvent(msgspec.Struct, frozen=True):
    # Go's time.String(): "2023-06-23 20:31:56.121961769 +0000 UTC m=+91717.525857105"
    current_time: str
    # A string in the docs, an integer in live captures.
    heartbeat_counter: int | str


class SubscriptionsEvent(msgspec.Struct, frozen=True):
    subscriptions: dict[str, list[str]] = {}


class WsTicker(msgspec.Struct, frozen=True):
    type: str
    product_id: str
    price: str
    volume_24_h: str = ""
    low_24_h: str = ""
    high_24_h: str = ""
    price_percent_chg_24_h: str = ""
    best_bid: str = ""
    best_ask: str = ""


class TickerEvent(msgspec.Struct, frozen=True):
    type: str
    tickers: list[WsTicker] = []


class WsStatusProduct(msgspec.Struct, frozen=True):
    product_type: str
    id: str
    base_currency: str
    quote_currency: str
    status: str
    display_name: str = ""
    status_message: str = ""


class StatusEvent(msgspec.Struct, frozen=True):
    type: str
    products: list[WsStatusProduct] = []


class _Envelope(msgspec.Struct, frozen=True, kw_only=True, tag_field="channel"):
    client_id: str = ""
    timestamp: str  # send time on Coinbase's clock
    sequence_num: int


class CandlesMessage(_Envelope, frozen=True, kw_only=True, tag="candles"):
    events: list[CandlesEvent]


class MarketTradesMessage(_Envelope, frozen=True, kw_only=True, tag="market_trades"):
    events: list[MarketTradesEvent]


class HeartbeatsMessage(_Envelope, frozen=True, kw_only=True, tag="heartbeats"):
    events: list[HeartbeatEvent]


class SubscriptionsMessage(_Envelope, frozen=True, kw_only=True, tag="subscriptions"):
    events: list[SubscriptionsEvent]


class TickerMessage(_Envelope, frozen=True, kw_only=True, tag="ticker"):
    events: list[TickerEvent]


class StatusMessage(_Envelope, frozen=True, kw_only=True, tag="status"):
    events: list[StatusEvent]


WsMessage = (
    CandlesMessage
    | MarketTradesMessage
    | HeartbeatsMessage
    | SubscriptionsMessage
    | TickerMessage
    | StatusMessage
)


class WsError(msgspec.Struct, frozen=True):
    type: Literal["error"]
    message: str = ""


# ---- REST ---------------------------------------------------------------------------------------


class RestCandle(msgspec.Struct, frozen=True, gc=False):
    start: str
    low: str
    high: str
    open: str
    close: str
    volume: str


class CandlesResponse(msgspec.Struct, frozen=True):
    candles: list[RestCandle] = []


class Product(msgspec.Struct, frozen=True, kw_only=True):
    product_id: str
    product_type: str = ""
    status: str = ""
    is_disabled: bool = False
    trading_disabled: bool = False
    view_only: bool = False
    base_currency_id: str = ""
    quote_currency_id: str = ""
    base_display_symbol: str = ""
    quote_display_symbol: str = ""
    # Non-empty when this product is an alias of another (BTC-USDC → BTC-USD): same order book.
    alias: str = ""
    approximate_quote_24h_volume: str = ""
    volume_24h: str = ""
    price: str = ""


class ProductsResponse(msgspec.Struct, frozen=True):
    products: list[Product] = []
    num_products: int | None = None


class ServerTimeResponse(msgspec.Struct, frozen=True):
    iso: str = ""
    epochSeconds: str | int | None = None
    epochMillis: str | int | None = None


class Money(msgspec.Struct, frozen=True):
    value: str
    currency: str


class Account(msgspec.Struct, frozen=True, kw_only=True):
    uuid: str
    currency: str
    available_balance: Money
    hold: Money | None = None
    active: bool = True
    type: str = ""


class AccountsResponse(msgspec.Struct, frozen=True):
    accounts: list[Account] = []
    has_next: bool = False
    cursor: str = ""
    size: int | None = None
