"""Pure conversions from Binance structs to Livermore types, with validation.

Anything malformed raises `InvalidFrame`; the feed turns it into a counted `FeedDropped`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from math import isfinite

import msgspec

from livermore_common.exchanges.base import Balance, SymbolVolume
from livermore_common.exchanges.binance import schemas as s
from livermore_common.exchanges.validation import InvalidFrame, checked_candle, number
from livermore_common.messages import Candle

# Lax only for the live kline: numeric strings become numbers (a price "NaN" still decodes and is
# refused below; a non-numeric string where a number belongs still fails the decode).
_kline_decoder = msgspec.json.Decoder(s.LiveCombinedKline, strict=False)
decode_kline = _kline_decoder.decode  # the live feed's fast path (msgspec.DecodeError if not)
_envelope_decoder = msgspec.json.Decoder(s.Envelope)
_event_decoder = msgspec.json.Decoder(s.GenericEvent)


def stream_name(symbol: str, timeframe: str) -> str:
    """`btcusdt@kline_1m`: Binance stream names are lower case; intervals match our names."""
    return f"{symbol.lower()}@kline_{timeframe}"


def decode_frame(data: str | bytes) -> s.LiveCombinedKline | s.Envelope:
    """A combined-stream frame: the kline fast path first, then the generic envelope."""
    try:
        return _kline_decoder.decode(data)
    except msgspec.DecodeError as exc:
        first = str(exc)
    try:
        envelope = _envelope_decoder.decode(data)
    except msgspec.DecodeError:
        raise InvalidFrame(f"malformed: {first}") from None
    if envelope.stream is not None and "@kline_" in envelope.stream:
        # It claimed to be a kline but did not decode as one: wrong types or missing fields.
        raise InvalidFrame(f"malformed kline: {first}")
    return envelope


def event_of(envelope: s.Envelope) -> s.GenericEvent | None:
    """The event an envelope carries, wrapped (`data`) or not (`e` at the top)."""
    if envelope.e is not None:
        return s.GenericEvent(e=envelope.e, E=envelope.E)
    if not envelope.data:
        return None
    try:
        return _event_decoder.decode(envelope.data)
    except msgspec.DecodeError:
        raise InvalidFrame("malformed event payload") from None


def kline_candle(k: s.Kline | s.LiveKline) -> Candle:
    if k.t > k.T:
        raise InvalidFrame(f"kline closes before it opens: t={k.t} T={k.T}")
    return checked_candle(k.t, k.o, k.h, k.l, k.c, k.v)


def live_candle(k: s.LiveKline) -> Candle:
    """`kline_candle` for the live feed: the common case in one test (NaN fails every comparison,
    an infinity the sum), anything else through the full check for its precise reason."""
    t, o, h, lo, c, v = k.t, k.o, k.h, k.l, k.c, k.v
    if 0 <= lo <= h and o >= 0 and c >= 0 and v >= 0 and 0 <= t <= k.T and isfinite(o + h + c + v):
        return Candle(timestamp=t, open=o, high=h, low=lo, close=c, volume=v)
    return kline_candle(k)


def rest_candle(row: s.RestKline) -> Candle:
    return checked_candle(row.open_time, row.open, row.high, row.low, row.close, row.volume)


def symbol_volumes(
    info: s.ExchangeInfoResponse, tickers: Iterable[s.Ticker24h], quotes: Sequence[str] = ()
) -> list[SymbolVolume]:
    """TRADING spot symbols with their 24h quote volume, highest first."""
    wanted = {q.upper() for q in quotes}
    tradable = {
        sym.symbol: sym
        for sym in info.symbols
        if sym.status == "TRADING"
        and sym.isSpotTradingAllowed
        and (not wanted or sym.quoteAsset.upper() in wanted)
    }
    ranked: list[SymbolVolume] = []
    for ticker in tickers:
        sym = tradable.get(ticker.symbol)
        if sym is None:
            continue
        try:
            volume = number(ticker.quoteVolume, "quoteVolume")
        except InvalidFrame:
            continue
        ranked.append(
            SymbolVolume(
                symbol=sym.symbol, base=sym.baseAsset, quote=sym.quoteAsset, volume_24h=volume
            )
        )
    ranked.sort(key=lambda v: (-v.volume_24h, v.symbol))
    return ranked


def balances(account: s.AccountResponse) -> list[Balance]:
    """free + locked per asset, zero and unreadable entries left out."""
    out: list[Balance] = []
    for entry in account.balances:
        try:
            quantity = number(entry.free, "free") + number(entry.locked, "locked")
        except InvalidFrame:
            continue
        if quantity > 0:
            out.append(Balance(asset=entry.asset, quantity=quantity))
    return out
