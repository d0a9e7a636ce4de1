"""Coinbase WebSocket messages: the envelope with a per-connection `sequence_num`, candles and
trades as the venue spells them, and hostile variants for the malformed-frame fault."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from services.sim.formats import go_time, price_trimmed, rfc3339, rfc3339_us, trimmed
from services.sim.market import Bar, Trade
from services.sim.universe import SymbolSpec

_encode = msgspec.json.Encoder().encode
# Trade ids: minute index * stride + position within the minute (unique, increasing).
TRADE_ID_STRIDE = 100


def candle_dict(spec: SymbolSpec, start_ms: int, bar: Bar) -> dict[str, str]:
    d = spec.decimals
    return {
        "start": str(start_ms // 1000),
        "high": price_trimmed(bar.high, d),
        "low": price_trimmed(bar.low, d),
        "open": price_trimmed(bar.open, d),
        "close": price_trimmed(bar.close, d),
        "volume": trimmed(bar.volume),
        "product_id": spec.name,
    }


def trade_dict(spec: SymbolSpec, trade: Trade, minute: int, position: int) -> dict[str, str]:
    return {
        "trade_id": str(minute * TRADE_ID_STRIDE + position),
        "product_id": spec.name,
        "price": price_trimmed(trade.price, spec.decimals),
        "size": trimmed(trade.size),
        "side": "BUY" if trade.buy else "SELL",
        "time": rfc3339_us(trade.time_us),
    }


class Frames:
    """Builds one connection's messages; `sequence_num` counts every message sent on it."""

    def __init__(self) -> None:
        self.sequence = 0
        self.heartbeats = 0

    def skip(self, count: int) -> None:
        self.sequence += count

    def _next(self) -> int:
        seq = self.sequence
        self.sequence += 1
        return seq

    def message(self, channel: str, stamp: float, events: list[Any]) -> str:
        envelope = {
            "channel": channel,
            "client_id": "",
            "timestamp": rfc3339(stamp),
            "sequence_num": self._next(),
            "events": events,
        }
        return _encode(envelope).decode()

    def heartbeat(self, stamp: float, exchange_s: float, started: float) -> str:
        # The live feed sends an integer counter (the docs' example shows a string).
        self.heartbeats += 1
        event = {
            "current_time": go_time(exchange_s, time.monotonic() - started),
            "heartbeat_counter": self.heartbeats,
        }
        return self.message("heartbeats", stamp, [event])

    def malformed(self, kind: str, spec: SymbolSpec, stamp: float) -> str:
        """A hostile message; it consumes a sequence number like any other."""
        trade: dict[str, Any] = {
            "trade_id": "0",
            "product_id": spec.name,
            "price": "1",
            "size": "1",
            "side": "BUY",
            "time": rfc3339(stamp),
        }
        if kind == "bad_json":
            good = self.message("market_trades", stamp, [])
            return good[: len(good) // 2] + "}{,"
        if kind == "wrong_types":
            trade.update(price=["1"], size=None)
        elif kind == "nan":
            trade["price"] = "NaN"
        elif kind == "negative_price":
            trade["price"] = "-1"
        else:
            trade["pad"] = "x" * (2 << 20)
        return self.message("market_trades", stamp, [{"type": "update", "trades": [trade]}])
