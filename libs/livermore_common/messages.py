"""Every message that crosses Redis, as msgspec Structs, with one shared encoder and decoders.

Rules: structs are frozen and keyword-only; adding a field means a new field with a default;
a breaking change means a new message type. Decoders ignore unknown fields so older consumers keep
working when producers add fields.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import msgspec

T = TypeVar("T")


class Candle(msgspec.Struct, frozen=True, kw_only=True):
    """One OHLCV bucket; `timestamp` is the bucket start in epoch ms UTC."""

    timestamp: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class CandleClosed(msgspec.Struct, frozen=True, kw_only=True):
    """A closed candle, announced once per (exchange, symbol, timeframe, timestamp)."""

    exchange_id: int
    exchange: str
    symbol: str
    timeframe: str
    timestamp: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    # Exchange clock when the close was known (freshness of alerts is judged against it).
    exchange_time: int = 0
    # 1 = shared keys; 2 = user overflow for `user_ids` only.
    tier: int = 1
    user_ids: tuple[int, ...] = ()
    # Local wall clock (ms) when the final frame was received; for latency measurement only.
    received_at: int = 0

    def candle(self) -> Candle:
        return Candle(
            timestamp=self.timestamp,
            open=self.open,
            high=self.high,
            low=self.low,
            close=self.close,
            volume=self.volume,
        )


class IndicatorUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """MACD-V computed on one closed candle, with liquidity metadata."""

    exchange_id: int
    exchange: str
    symbol: str
    timeframe: str
    type: str
    timestamp: int
    macd_v: float | None
    signal: float | None
    histogram: float | None
    fast_ema: float | None
    slow_ema: float | None
    atr: float | None
    stage: str
    seeded: bool
    n_eff: int
    gap_ratio: float
    liquidity: str
    price: float
    reason: str | None = None
    exchange_time: int = 0
    tier: int = 1
    user_ids: tuple[int, ...] = ()
    received_at: int = 0
    # Candle timestamp of the series' previous published update (None for the first), so a
    # consumer can tell an update that arrived before its predecessor.
    prev_timestamp: int | None = None


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """An alert as published on `channel:alerts:{exchange_id}` (DOMAIN.md §6)."""

    id: str
    source_exchange_id: int
    source_exchange_name: str
    symbol: str
    timeframe: str
    alert_type: str
    trigger_label: str
    trigger_value: float
    signal: float | None
    histogram: float | None
    stage: str
    price: float
    candle_timestamp: int
    triggered_at: int
    context: dict[str, Any] | None = None


ControlVerb = Literal[
    "start",
    "stop",
    "getStatus",
    "pause",
    "resume",
    "add-symbol",
    "remove-symbol",
    "force-backfill",
    "clear-cache",
    "refresh-symbols",
]


class ControlCommand(msgspec.Struct, frozen=True, kw_only=True):
    """A command on `channel:control`; `signature` authenticates it (see `control.py`)."""

    id: str
    command: str
    exchange: str
    issued_at: int
    params: dict[str, Any] = {}
    signature: str = ""


ResponseStatus = Literal["ack", "success", "error", "already_started", "already_idle"]


class ControlResponse(msgspec.Struct, frozen=True, kw_only=True, tag="response", tag_field="kind"):
    """An answer to a command on `channel:control:responses`."""

    command_id: str
    status: str
    exchange: str
    instance_id: str
    timestamp: int
    message: str | None = None
    data: dict[str, Any] | None = None


LifecycleEventName = Literal[
    "exchange:connecting",
    "exchange:connected",
    "exchange:disconnected",
    "exchange:error",
    "exchange:idle",
]


class LifecycleEvent(msgspec.Struct, frozen=True, kw_only=True, tag="lifecycle", tag_field="kind"):
    """A connection lifecycle event, published on `channel:control:responses`."""

    event: str
    exchange_id: int
    exchange: str
    instance_id: str
    timestamp: int
    error: str | None = None
    detail: dict[str, Any] | None = None


ResponsesMessage = ControlResponse | LifecycleEvent

_encoder = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def encode(message: Any) -> bytes:
    """Encode any message (or plain JSON-able value) to JSON bytes."""
    return _encoder.encode(message)


def decode(data: bytes | str, type: type[T]) -> T:
    """Decode JSON into `type`, ignoring unknown fields (msgspec errors on bad input)."""
    decoder = _decoders.get(type)
    if decoder is None:
        decoder = _decoders[type] = msgspec.json.Decoder(type)
    return decoder.decode(data)  # type: ignore[no-any-return]


def decode_response(data: bytes | str) -> ControlResponse | LifecycleEvent:
    """Decode a message from `channel:control:responses` (tagged by `kind`)."""
    decoder = _decoders.get(ResponsesMessage)
    if decoder is None:
        decoder = _decoders[ResponsesMessage] = msgspec.json.Decoder(ResponsesMessage)
    return decoder.decode(data)  # type: ignore[no-any-return]


class SymbolEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One symbol an exchange's ingestors watch: tier 1 (shared) or 2 (only these users hold it)."""

    symbol: str
    tier: int = 1
    user_ids: tuple[int, ...] = ()
    volume_rank: int | None = None


class SymbolList(msgspec.Struct, frozen=True, kw_only=True):
    """The merged list the symbol manager maintains per exchange (`keys.symbol_list_key`)."""

    exchange_id: int
    updated_at: int
    symbols: tuple[SymbolEntry, ...]
