"""Every Redis key, channel and stream name Livermore uses, built in this one module.

The public contract (DOMAIN.md §2) is the unprefixed form. A deployment (or a test run) may set a
namespace, which is prepended to every name so that several installations can share one Redis
without touching each other's data; the module-level functions use the empty namespace.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

CONTROL_CHANNEL = "channel:control"
CONTROL_RESPONSES_CHANNEL = "channel:control:responses"

TIER_SHARED = 1
TIER_USER = 2


def _check_part(value: str | int, what: str) -> str:
    text = str(value)
    if not text or ":" in text or any(c.isspace() for c in text):
        raise ValueError(f"invalid {what} for a Redis name: {text!r}")
    return text


@dataclass(frozen=True, slots=True)
class KeySpace:
    """Builds names under an optional namespace prefix (empty in production by default)."""

    namespace: str = ""

    def _n(self, name: str) -> str:
        return f"{self.namespace}{name}"

    # -- Tier 1 (shared, exchange-scoped) ---------------------------------------------------
    def candle_key(self, exchange_id: int, symbol: str, timeframe: str) -> str:
        s, tf = _check_part(symbol, "symbol"), _check_part(timeframe, "timeframe")
        return self._n(f"candles:{int(exchange_id)}:{s}:{tf}")

    def indicator_key(self, exchange_id: int, symbol: str, timeframe: str, type: str) -> str:
        s, tf = _check_part(symbol, "symbol"), _check_part(timeframe, "timeframe")
        return self._n(f"indicator:{int(exchange_id)}:{s}:{tf}:{_check_part(type, 'type')}")

    # -- Tier 2 (user overflow, with TTL) ---------------------------------------------------
    def user_candle_key(self, user_id: int, exchange_id: int, symbol: str, timeframe: str) -> str:
        s, tf = _check_part(symbol, "symbol"), _check_part(timeframe, "timeframe")
        return self._n(f"usercandles:{int(user_id)}:{int(exchange_id)}:{s}:{tf}")

    def user_indicator_key(
        self, user_id: int, exchange_id: int, symbol: str, timeframe: str, type: str
    ) -> str:
        s, tf = _check_part(symbol, "symbol"), _check_part(timeframe, "timeframe")
        t = _check_part(type, "type")
        return self._n(f"userindicator:{int(user_id)}:{int(exchange_id)}:{s}:{tf}:{t}")

    # -- pub/sub channels -------------------------------------------------------------------
    def candle_close_channel(self, exchange_id: int, symbol: str, timeframe: str) -> str:
        s, tf = _check_part(symbol, "symbol"), _check_part(timeframe, "timeframe")
        return self._n(f"channel:exchange:{int(exchange_id)}:candle:close:{s}:{tf}")

    def indicator_channel(self, exchange_id: int, symbol: str, timeframe: str, type: str) -> str:
        s, tf = _check_part(symbol, "symbol"), _check_part(timeframe, "timeframe")
        t = _check_part(type, "type")
        return self._n(f"channel:exchange:{int(exchange_id)}:indicator:{s}:{tf}:{t}")

    def alerts_channel(self, exchange_id: int) -> str:
        return self._n(f"channel:alerts:{int(exchange_id)}")

    def alerts_channel_pattern(self) -> str:
        return self._n("channel:alerts:*")

    @property
    def control_channel(self) -> str:
        return self._n(CONTROL_CHANNEL)

    @property
    def control_responses_channel(self) -> str:
        return self._n(CONTROL_RESPONSES_CHANNEL)

    # -- hashes and bookkeeping -------------------------------------------------------------
    def exchange_status_key(self, exchange_id: int) -> str:
        return self._n(f"exchange:status:{int(exchange_id)}")

    def instance_status_key(self, exchange_id: int, instance_id: str) -> str:
        return self._n(
            f"exchange:status:{int(exchange_id)}:instance:{_check_part(instance_id, 'instance')}"
        )

    def exchange_instances_key(self, exchange_id: int) -> str:
        """Set of instance ids that have reported status for an exchange."""
        return self._n(f"exchange:status:{int(exchange_id)}:instances")

    def ingestor_members_key(self, exchange_id: int) -> str:
        """Sorted set of live ingestor instances of one exchange (score = lease expiry ms)."""
        return self._n(f"ingestors:{int(exchange_id)}:members")

    def symbol_list_key(self, exchange_id: int) -> str:
        """The merged symbol list (with tier annotations) the ingestors of an exchange follow."""
        return self._n(f"symbols:{int(exchange_id)}:merged")

    def symbols_changed_channel(self, exchange_id: int) -> str:
        return self._n(f"channel:exchange:{int(exchange_id)}:symbols")

    def closed_marker_key(self, exchange_id: int, symbol: str, timeframe: str) -> str:
        """Latest bucket start announced for a series; guards exactly-once close announcements."""
        s, tf = _check_part(symbol, "symbol"), _check_part(timeframe, "timeframe")
        return self._n(f"closed:{int(exchange_id)}:{s}:{tf}")

    def indicator_state_key(self, exchange_id: int, symbol: str, timeframe: str, type: str) -> str:
        s, tf = _check_part(symbol, "symbol"), _check_part(timeframe, "timeframe")
        return self._n(f"state:indicator:{int(exchange_id)}:{s}:{tf}:{_check_part(type, 'type')}")

    def alert_state_key(self, exchange_id: int, symbol: str, timeframe: str) -> str:
        s, tf = _check_part(symbol, "symbol"), _check_part(timeframe, "timeframe")
        return self._n(f"state:alert:{int(exchange_id)}:{s}:{tf}")

    def health_key(self, service: str, instance_id: str) -> str:
        return self._n(
            f"health:{_check_part(service, 'service')}:{_check_part(instance_id, 'instance')}"
        )

    def control_nonce_key(self, command_id: str) -> str:
        return self._n(f"control:seen:{_check_part(command_id, 'command id')}")

    # -- durable streams --------------------------------------------------------------------
    @property
    def candle_closed_stream(self) -> str:
        return self._n("stream:candles:closed")

    @property
    def indicator_stream(self) -> str:
        return self._n("stream:indicators")

    @property
    def alert_stream(self) -> str:
        return self._n("stream:alerts")

    @property
    def lifecycle_stream(self) -> str:
        return self._n("stream:lifecycle")

    def dead_letter_stream(self, stream: str) -> str:
        return f"{stream}:dead"

    # -- legacy, user-scoped (previous release) ---------------------------------------------
    def legacy_candle_key(self, user_id: int, exchange_id: int, symbol: str, timeframe: str) -> str:
        s, tf = _check_part(symbol, "symbol"), _check_part(timeframe, "timeframe")
        return self._n(f"candles:{int(user_id)}:{int(exchange_id)}:{s}:{tf}")

    def legacy_indicator_key(
        self, user_id: int, exchange_id: int, symbol: str, timeframe: str, type: str
    ) -> str:
        s, tf = _check_part(symbol, "symbol"), _check_part(timeframe, "timeframe")
        t = _check_part(type, "type")
        return self._n(f"indicator:{int(user_id)}:{int(exchange_id)}:{s}:{tf}:{t}")

    def legacy_candle_close_channel(
        self, user_id: int, exchange_id: int, symbol: str, timeframe: str
    ) -> str:
        s, tf = _check_part(symbol, "symbol"), _check_part(timeframe, "timeframe")
        return self._n(f"channel:candle:close:{int(user_id)}:{int(exchange_id)}:{s}:{tf}")


DEFAULT = KeySpace()

candle_key = DEFAULT.candle_key
indicator_key = DEFAULT.indicator_key
user_candle_key = DEFAULT.user_candle_key
user_indicator_key = DEFAULT.user_indicator_key
candle_close_channel = DEFAULT.candle_close_channel
indicator_channel = DEFAULT.indicator_channel
alerts_channel = DEFAULT.alerts_channel
exchange_status_key = DEFAULT.exchange_status_key


def _deprecated(name: str) -> None:
    warnings.warn(
        f"keys.{name} builds a legacy user-scoped name; use the exchange-scoped functions",
        DeprecationWarning,
        stacklevel=3,
    )


def legacy_candle_key(user_id: int, exchange_id: int, symbol: str, timeframe: str) -> str:
    """Deprecated: the previous release's user-scoped candle key (read as fallback only)."""
    _deprecated("legacy_candle_key")
    return DEFAULT.legacy_candle_key(user_id, exchange_id, symbol, timeframe)


def legacy_indicator_key(
    user_id: int, exchange_id: int, symbol: str, timeframe: str, type: str
) -> str:
    """Deprecated: the previous release's user-scoped indicator key (read as fallback only)."""
    _deprecated("legacy_indicator_key")
    return DEFAULT.legacy_indicator_key(user_id, exchange_id, symbol, timeframe, type)


def legacy_candle_close_channel(user_id: int, exchange_id: int, symbol: str, timeframe: str) -> str:
    """Deprecated: the previous release's user-scoped candle-close channel (compatibility mode)."""
    _deprecated("legacy_candle_close_channel")
    return DEFAULT.legacy_candle_close_channel(user_id, exchange_id, symbol, timeframe)
