"""Pure conversions from Coinbase structs to Livermore types, with validation.

Anything malformed raises `InvalidFrame`; the feed turns it into a counted `FeedDropped`.
"""

from __future__ import annotations

import calendar
import re
from typing import NamedTuple

import msgspec

from livermore_common.exchanges.base import Balance, SymbolVolume
from livermore_common.exchanges.coinbase import schemas as s
from livermore_common.exchanges.validation import (
    InvalidFrame,
    checked_candle,
    number,
    volume_units,
)
from livermore_common.messages import Candle

# RFC 3339 ("2023-06-09T20:19:35.39625135Z") and Go's time.String()
# ("2023-06-23 20:31:56.121961769 +0000 UTC m=+91717.5"): date, time, fraction, offset.
_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?\s*(Z|[+-]\d\d:?\d\d)?"
)
_SECONDS_CACHE: dict[str, int] = {}


class Trade(NamedTuple):
    product_id: str
    time_ms: int
    price: float
    size_units: int  # exact, in 1e-12 units (see validation.volume_units)
    trade_id: str


def parse_time_ms(text: str) -> int:
    """Epoch ms of a Coinbase timestamp (either format); InvalidFrame when unreadable."""
    m = _TIME.match(text)
    if m is None:
        raise InvalidFrame(f"unreadable time {text[:40]!r}")
    head = text[:19]
    seconds = _SECONDS_CACHE.get(head)
    if seconds is None:
        y, mo, d, h, mi, sec = (int(g) for g in m.groups()[:6])
        if not (1 <= d <= 31 and h < 24 and mi < 60 and sec < 61):
            raise InvalidFrame(f"invalid time {text[:40]!r}")
        try:
            seconds = calendar.timegm((y, mo, d, h, mi, sec, 0, 0, 0))
        except (ValueError, OverflowError):
            raise InvalidFrame(f"invalid time {text[:40]!r}") from None
        if len(_SECONDS_CACHE) > 4096:  # bounded: a day of distinct seconds is not worth keeping
            _SECONDS_CACHE.clear()
        _SECONDS_CACHE[head] = seconds
    fraction, offset = m.group(7), m.group(8)
    millis = int((fraction + "00")[:3]) if fraction else 0
    return (seconds - _offset_seconds(offset)) * 1000 + millis


def _offset_seconds(offset: str | None) -> int:
    if not offset or offset == "Z":
        return 0
    sign = -1 if offset[0] == "-" else 1
    digits = offset[1:].replace(":", "")
    return sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)


def epoch_seconds_ms(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidFrame(f"bad epoch seconds {text[:20]!r}") from None
    if value < 0:
        raise InvalidFrame(f"negative epoch seconds {value}")
    return value * 1000


def ws_candle(c: s.WsCandle) -> Candle:
    return checked_candle(epoch_seconds_ms(c.start), c.open, c.high, c.low, c.close, c.volume)


def rest_candle(c: s.RestCandle) -> Candle:
    return checked_candle(epoch_seconds_ms(c.start), c.open, c.high, c.low, c.close, c.volume)


def trade(t: s.WsTrade) -> Trade:
    return Trade(
        t.product_id,
        parse_time_ms(t.time),
        number(t.price, "price"),
        volume_units(t.size),
        t.trade_id,
    )


_ws_decoder = msgspec.json.Decoder(s.WsMessage)
_error_decoder = msgspec.json.Decoder(s.WsError)


def decode_ws(data: str | bytes) -> s.WsMessage | s.WsError:
    """One WebSocket frame; InvalidFrame for bad JSON, wrong types or unknown channels."""
    try:
        message: s.WsMessage = _ws_decoder.decode(data)
        return message
    except msgspec.DecodeError as first:
        try:
            return _error_decoder.decode(data)
        except msgspec.DecodeError:
            raise InvalidFrame(f"malformed: {first}") from None


def server_time_ms(resp: s.ServerTimeResponse) -> int:
    if resp.epochMillis not in (None, ""):
        return int(resp.epochMillis)
    if resp.epochSeconds not in (None, ""):
        return int(float(resp.epochSeconds)) * 1000
    if resp.iso:
        return parse_time_ms(resp.iso)
    raise InvalidFrame("server time response carries no time")


def symbol_volume(p: s.Product) -> SymbolVolume | None:
    """A tradable, online, non-alias SPOT product with its 24h quote volume; else None."""
    if p.product_type != "SPOT" or p.status.lower() != "online" or p.alias:
        return None
    if p.is_disabled or p.trading_disabled or p.view_only:
        return None
    try:
        volume = number(p.approximate_quote_24h_volume or "0", "approximate_quote_24h_volume")
    except InvalidFrame:
        return None
    base, _, quote = p.product_id.partition("-")
    return SymbolVolume(
        symbol=p.product_id,
        base=p.base_currency_id or p.base_display_symbol or base,
        quote=p.quote_currency_id or p.quote_display_symbol or quote,
        volume_24h=volume,
    )


def balance(a: s.Account) -> Balance | None:
    """available + hold of one account; None when zero or unreadable."""
    try:
        held = number(a.hold.value, "hold") if a.hold is not None else 0.0
        quantity = number(a.available_balance.value, "available_balance") + held
    except InvalidFrame:
        return None
    return Balance(asset=a.currency, quantity=quantity) if quantity > 0 else None
