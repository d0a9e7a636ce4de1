"""Exchange adapters: the protocol (base), the factory, and the Coinbase and Binance venues."""

from livermore_common.exchanges.base import (
    AdapterOptions,
    Balance,
    Capabilities,
    ClosedCandle,
    Credentials,
    ExchangeAdapter,
    ExchangeInfo,
    Feed,
    FeedDropped,
    FeedEvent,
    FeedGap,
    FeedStats,
    Heartbeat,
    SymbolVolume,
)
from livermore_common.exchanges.factory import DEFAULT_ADAPTERS, ExchangeAdapterFactory

__all__ = [
    "DEFAULT_ADAPTERS",
    "AdapterOptions",
    "Balance",
    "Capabilities",
    "ClosedCandle",
    "Credentials",
    "ExchangeAdapter",
    "ExchangeAdapterFactory",
    "ExchangeInfo",
    "Feed",
    "FeedDropped",
    "FeedEvent",
    "FeedGap",
    "FeedStats",
    "Heartbeat",
    "SymbolVolume",
]
