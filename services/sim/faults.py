"""Switchable faults: dropped or stalled connections, sequence skips, malformed frames, HTTP
errors and `serverShutdown`, driven programmatically or through `POST /_sim/faults`.

Each venue's WebSocket hub registers itself as a `FaultTarget`; REST handlers consult
`take_http_error`; senders consult `is_stalled`.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

EXCHANGES = ("binance", "coinbase")
MALFORMED_KINDS = ("bad_json", "wrong_types", "nan", "negative_price", "huge")


class FaultError(ValueError):
    """A fault request that cannot be applied (unknown kind, wrong exchange, bad argument)."""


class FaultTarget(Protocol):
    def drop(self) -> int: ...

    def inject(self, kind: str, count: int) -> int: ...

    def sequence_skip(self, count: int) -> int: ...

    def server_shutdown(self, after_s: float) -> int: ...


class HttpFault:
    __slots__ = ("remaining", "retry_after", "status")

    def __init__(self, status: int, remaining: int, retry_after: int) -> None:
        self.status = status
        self.remaining = remaining
        self.retry_after = retry_after


def _exchanges(exchange: str) -> tuple[str, ...]:
    if exchange == "all":
        return EXCHANGES
    if exchange not in EXCHANGES:
        raise FaultError(f"unknown exchange {exchange!r} (binance, coinbase or all)")
    return (exchange,)


class Faults:
    def __init__(self) -> None:
        self._targets: dict[str, FaultTarget] = {}
        self._stalled_until: dict[str, float] = dict.fromkeys(EXCHANGES, 0.0)
        self._http: dict[str, HttpFault | None] = dict.fromkeys(EXCHANGES)
        self.log: list[dict[str, Any]] = []

    def register(self, exchange: str, target: FaultTarget) -> None:
        self._targets[exchange] = target

    def _target(self, exchange: str) -> FaultTarget:
        target = self._targets.get(exchange)
        if target is None:
            raise FaultError(f"{exchange} is not being served")
        return target

    # ---- WebSocket faults ---------------------------------------------------------------

    def drop(self, exchange: str = "all") -> int:
        """Close every WebSocket connection of the exchange abruptly (no close frame)."""
        return sum(self._target(ex).drop() for ex in _exchanges(exchange))

    def stall(self, exchange: str = "all", seconds: float = 5.0) -> None:
        """Keep connections open but send nothing (data, pings, heartbeats) for `seconds`."""
        until = time.monotonic() + seconds
        for ex in _exchanges(exchange):
            self._stalled_until[ex] = until

    def is_stalled(self, exchange: str) -> bool:
        return time.monotonic() < self._stalled_until[exchange]

    def sequence_skip(self, count: int = 1) -> int:
        """Coinbase: the next message on each connection skips `count` sequence numbers."""
        return self._target("coinbase").sequence_skip(count)

    def malformed(self, exchange: str = "all", kind: str = "bad_json", count: int = 1) -> int:
        """Send `count` malformed frames of `kind` on every connection (besides normal data)."""
        if kind not in MALFORMED_KINDS:
            raise FaultError(f"unknown malformed kind {kind!r} ({', '.join(MALFORMED_KINDS)})")
        return sum(self._target(ex).inject(kind, count) for ex in _exchanges(exchange))

    def server_shutdown(self, after_s: float = 1.0) -> int:
        """Binance: send `serverShutdown`, then close each connection `after_s` later."""
        return self._target("binance").server_shutdown(after_s)

    # ---- REST faults --------------------------------------------------------------------

    def http_error(
        self, exchange: str = "all", status: int = 429, count: int = 1, retry_after: int = 1
    ) -> None:
        """Answer the next `count` REST calls with `status` (429, or 418 on Binance)."""
        if status not in (418, 429, 500, 503):
            raise FaultError("status must be 418, 429, 500 or 503")
        for ex in _exchanges(exchange):
            self._http[ex] = HttpFault(status, count, retry_after)

    def take_http_error(self, exchange: str) -> HttpFault | None:
        fault = self._http[exchange]
        if fault is None or fault.remaining <= 0:
            return None
        fault.remaining -= 1
        return fault

    def clear(self) -> None:
        self._stalled_until = dict.fromkeys(EXCHANGES, 0.0)
        self._http = dict.fromkeys(EXCHANGES)

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "stalled": {ex: max(0.0, until - now) for ex, until in self._stalled_until.items()},
            "http": {
                ex: {"status": f.status, "remaining": f.remaining} if f else None
                for ex, f in self._http.items()
            },
            "applied": self.log[-50:],
        }

    def apply(self, request: dict[str, Any]) -> dict[str, Any]:
        """Apply one fault described as JSON (the control API's body); returns a summary."""
        kind = request.get("fault")
        exchange = str(request.get("exchange", "all"))
        result: dict[str, Any] = {"fault": kind, "exchange": exchange}
        try:
            result.update(self._dispatch(str(kind), exchange, request))
        except (TypeError, ValueError) as exc:
            raise FaultError(str(exc)) from None
        self.log.append(result)
        return result

    def _dispatch(self, kind: str, exchange: str, req: dict[str, Any]) -> dict[str, Any]:
        if kind == "drop":
            return {"connections": self.drop(exchange)}
        if kind == "stall":
            self.stall(exchange, float(req.get("seconds", 5.0)))
            return {}
        if kind == "sequence_skip":
            return {"connections": self.sequence_skip(int(req.get("count", 1)))}
        if kind == "malformed":
            n = self.malformed(exchange, str(req.get("kind", "bad_json")), int(req.get("count", 1)))
            return {"connections": n}
        if kind == "http_error":
            status, count = int(req.get("status", 429)), int(req.get("count", 1))
            self.http_error(exchange, status, count, int(req.get("retry_after", 1)))
            return {}
        if kind == "server_shutdown":
            return {"connections": self.server_shutdown(float(req.get("after_s", 1.0)))}
        if kind == "clear":
            self.clear()
            return {}
        raise FaultError(f"unknown fault {kind!r}")
