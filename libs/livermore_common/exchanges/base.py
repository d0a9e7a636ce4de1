"""What every exchange adapter offers the services, and the events its live feed yields.

An adapter is built from one `exchanges` row (endpoints come only from that row). Venue quirks are
data on `Capabilities`, never `if name == ...` in shared code. The live feed yields *closed* candles
for the timeframes the venue streams natively (close detection is the venue's business, see
DOMAIN.md §4); higher timeframes are aggregated by the caller.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import msgspec

from livermore_common.messages import Candle


class Capabilities(msgspec.Struct, frozen=True, kw_only=True):
    # Timeframes the live feed yields closed candles for (others are aggregated from these).
    native_timeframes: tuple[str, ...]
    # Timeframes the REST candle endpoint serves (used for backfill and repair).
    rest_timeframes: tuple[str, ...]
    max_candles_per_request: int
    # True when REST returns newest first (Coinbase); the adapter still returns ascending lists.
    rest_newest_first: bool
    max_streams_per_connection: int = 0
    # The venue sends something (data, heartbeat or ping) at least this often on a healthy feed;
    # the ingestor declares a stall after 3x this interval of silence.
    expected_message_interval_s: float = 2.0


class ExchangeInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The `exchanges` row an adapter was built from (subset the adapters need)."""

    id: int
    name: str
    display_name: str
    ws_url: str
    rest_url: str
    supported_timeframes: tuple[str, ...] = ()
    api_limits: dict[str, Any] = {}


class SymbolVolume(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    base: str
    quote: str
    volume_24h: float  # in quote currency


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    asset: str
    quantity: float


# ---- live feed events ------------------------------------------------------------------------


class ClosedCandle(msgspec.Struct, frozen=True, kw_only=True):
    """A candle the venue's feed has closed. `exchange_time` = venue clock when it was known."""

    symbol: str
    timeframe: str
    candle: Candle
    exchange_time: int


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True):
    """The venue showed it is alive (WS ping, heartbeat message); `exchange_time` when known."""

    exchange_time: int | None = None


class FeedGap(msgspec.Struct, frozen=True, kw_only=True):
    """Data may have been lost (sequence skip, missed final frame); the caller should backfill."""

    reason: str
    symbols: tuple[str, ...] = ()


class FeedDropped(msgspec.Struct, frozen=True, kw_only=True):
    """A frame was rejected (malformed, wrong types, non-finite or negative prices, oversized)."""

    reason: str


FeedEvent = ClosedCandle | Heartbeat | FeedGap | FeedDropped


class Feed(Protocol):
    """One live session (possibly several sockets). Iterating yields events until the venue
    disconnects, which raises `TransientError`; `aclose()` ends it cleanly."""

    def __aiter__(self) -> AsyncIterator[FeedEvent]: ...

    async def update_symbols(self, symbols: Sequence[str]) -> None:
        """Change the subscribed symbols live (SUBSCRIBE/UNSUBSCRIBE on the open sockets)."""
        ...

    async def aclose(self) -> None: ...


class ExchangeAdapter(Protocol):
    info: ExchangeInfo
    capabilities: Capabilities

    async def server_time(self) -> int:
        """The venue's clock, epoch ms."""
        ...

    async def fetch_candles(
        self, symbol: str, timeframe: str, start_ms: int, end_ms: int
    ) -> list[Candle]:
        """Closed candles with start_ms <= timestamp < end_ms, ascending, paged within limits."""
        ...

    async def top_symbols(self, limit: int) -> list[SymbolVolume]:
        """Tradable spot symbols by 24h quote volume, highest first."""
        ...

    async def open_feed(self, symbols: Sequence[str], timeframes: Sequence[str]) -> Feed:
        """Connect the live feed for these symbols; yields closed candles of native timeframes."""
        ...

    async def aclose(self) -> None: ...
