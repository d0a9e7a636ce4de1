"""What every exchange adapter offers the services, and the events its live feed yields.

An adapter is built from one `exchanges` row (endpoints come only from that row). Venue quirks are
data on `Capabilities`, never `if name == ...` in shared code. The live feed yields *closed* candles
for the timeframes the venue streams natively (close detection is the venue's business, see
DOMAIN.md §4); higher timeframes are aggregated by the caller.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from livermore_common.config import Secret
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


class Credentials:
    """An exchange API key pair, passed in by the caller; its repr never shows either part.

    Coinbase: `api_key` = CDP key name (organizations/.../apiKeys/...), `api_secret` = EC private
    key PEM. Binance: the API key and its HMAC secret.
    """

    __slots__ = ("api_key", "api_secret")

    def __init__(self, api_key: str, api_secret: Secret | str) -> None:
        self.api_key = api_key
        self.api_secret = api_secret if isinstance(api_secret, Secret) else Secret(api_secret)

    def __repr__(self) -> str:
        return "Credentials(api_key='***', api_secret='***')"

    __str__ = __repr__


class AdapterOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Tunables of an adapter and its feeds (defaults suit the real venues)."""

    # Frames above this are dropped and counted (FeedDropped); the connection lives on.
    max_frame_bytes: int = 1 << 20
    # Hard cap given to `websockets`: a frame above it closes the connection (TransientError).
    hard_max_frame_bytes: int = 16 << 20
    # Events buffered between the socket readers and the consumer (backpressure beyond it).
    queue_size: int = 10_000
    # No frame or ping for this long = stalled connection (TransientError); None = venue default.
    stall_timeout_s: float | None = None
    # Binance: replace each connection (make-before-break) before the venue's 24 h limit.
    rotate_after_s: float = 23.5 * 3600
    # Coinbase 1m candles from trades close this long after the minute ends on the venue clock.
    trade_close_grace_ms: int = 2_000
    open_timeout_s: float = 10.0
    http_timeout_s: float = 15.0
    # A PEM file of certificates trusted for wss:// and https:// on top of the system's (e.g. the
    # simulator's self-signed one, `livermore sim --tls`); verification itself always stays on.
    ca_file: str | None = None


# ---- live feed events ------------------------------------------------------------------------


class ClosedCandle(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A candle the venue's feed has closed. `exchange_time` = venue clock when it was known.

    Not tracked by the garbage collector (it holds strings, ints and a scalar Candle: no cycle
    can pass through it): tens of thousands wait in the ingestor's write queue at full speed,
    and as tracked objects they were promoted to the old generations and traversed again and
    again by its collections."""

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


@dataclass(slots=True)
class FeedStats:
    """Counters of one feed (read by the ingestor for status and metrics)."""

    frames: int = 0
    dropped: int = 0
    oversized: int = 0
    gaps: int = 0
    heartbeats: int = 0
    pings: int = 0
    closed_candles: int = 0
    rotations: int = 0
    stalls: int = 0


class Feed(Protocol):
    """One live session (possibly several sockets). Iterating yields events until the venue
    disconnects, which raises `TransientError`; `aclose()` ends it cleanly."""

    stats: FeedStats

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

    async def top_symbols(self, limit: int, *, quotes: Sequence[str] = ()) -> list[SymbolVolume]:
        """Tradable spot symbols by 24h quote volume, highest first (only `quotes` if given)."""
        ...

    async def fetch_balances(self, credentials: Credentials) -> list[Balance]:
        """Non-zero balances of the account the credentials belong to (free + held)."""
        ...

    async def open_feed(self, symbols: Sequence[str], timeframes: Sequence[str]) -> Feed:
        """Connect the live feed for these symbols; yields closed candles of native timeframes."""
        ...

    async def aclose(self) -> None:
        """Close the HTTP session and every feed this adapter opened (idempotent)."""
        ...

    async def __aenter__(self) -> ExchangeAdapter: ...

    async def __aexit__(self, *exc: Any) -> None: ...
