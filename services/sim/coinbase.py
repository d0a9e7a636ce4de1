"""Coinbase Advanced Trade REST: public market endpoints, server time, and JWT-guarded accounts.

Paths: `/api/v3/brokerage/time`, `/api/v3/brokerage/market/products[/{id}[/candles]]`, the
authenticated `/api/v3/brokerage/products…` twins, and `/api/v3/brokerage/accounts`. Errors use
the venue's `{error, error_details, message}` body; candles come newest first, at most 350.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from services.sim.candles import coinbase_series
from services.sim.clock import SimClock
from services.sim.coinbase_info import accounts_body, product_body
from services.sim.config import SimConfig
from services.sim.faults import Faults
from services.sim.formats import price_trimmed, rfc3339, trimmed
from services.sim.intervals import COINBASE_GRANULARITIES, TIMEFRAME_MS
from services.sim.jwt import JwtError, verify_jwt
from services.sim.market import Market
from services.sim.truth import Truth

MAX_CANDLES = 350
_BASE = "/api/v3/brokerage"


class CoinbaseError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def _invalid(message: str) -> CoinbaseError:
    return CoinbaseError(400, "INVALID_ARGUMENT", message)


class CoinbaseRest:
    def __init__(
        self, market: Market, clock: SimClock, truth: Truth, faults: Faults, config: SimConfig
    ) -> None:
        self.market, self.clock, self.truth, self.faults = market, clock, truth, faults
        self.config = config
        self._second = 0
        self._count = 0

    def routes(self) -> list[web.RouteDef]:
        public, private = self._wrap(auth=False), self._wrap(auth=True)
        return [
            web.get(f"{_BASE}/time", public(self.server_time)),
            web.get(f"{_BASE}/market/products", public(self.products)),
            web.get(f"{_BASE}/market/products/{{product_id}}", public(self.product)),
            web.get(f"{_BASE}/market/products/{{product_id}}/candles", public(self.candles)),
            web.get(f"{_BASE}/products", private(self.products)),
            web.get(f"{_BASE}/products/{{product_id}}", private(self.product)),
            web.get(f"{_BASE}/products/{{product_id}}/candles", private(self.candles)),
            web.get(f"{_BASE}/accounts", private(self.accounts)),
        ]

    def _wrap(self, *, auth: bool) -> Any:
        def decorate(handler: Any) -> Any:
            async def endpoint(request: web.Request) -> web.Response:
                fault = self.faults.take_http_error("coinbase")
                if fault is not None:
                    return _error_response(
                        CoinbaseError(fault.status, "RATE_LIMIT_EXCEEDED", "Too many requests"),
                        {"Retry-After": str(fault.retry_after)},
                    )
                if not auth and not self._within_public_rate():
                    err = CoinbaseError(429, "RATE_LIMIT_EXCEEDED", "Too many requests")
                    return _error_response(err, {"Retry-After": "1"})
                if auth and not self._authorized(request):
                    return web.Response(status=401, text="Unauthorized\n")
                try:
                    return web.json_response(handler(request))
                except CoinbaseError as exc:
                    return _error_response(exc, {})

            return endpoint

        return decorate

    def _within_public_rate(self) -> bool:
        limit = self.config.coinbase_public_rps
        if limit <= 0:
            return True
        second = int(time.monotonic())
        if second != self._second:
            self._second, self._count = second, 0
        self._count += 1
        return self._count <= limit

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token:
            return False
        try:
            verify_jwt(token, self.config.coinbase_jwt_public_key)
        except JwtError:
            return False
        return True

    # ---- endpoints ----------------------------------------------------------------------

    def server_time(self, request: web.Request) -> dict[str, Any]:
        now = self.clock.now_s()
        return {
            "iso": rfc3339(now, 3),
            "epochSeconds": str(int(now)),
            "epochMillis": str(int(now * 1000)),
        }

    def products(self, request: web.Request) -> dict[str, Any]:
        wanted = request.query.getall("product_ids", [])
        specs = [s for s in self.market.symbols if not wanted or s.name in wanted]
        product_type = request.query.get("product_type")
        if product_type not in (None, "", "SPOT", "UNKNOWN_PRODUCT_TYPE"):
            specs = []
        offset = int(request.query.get("offset") or 0)
        limit = int(request.query.get("limit") or 0)
        total = len(specs)
        specs = specs[offset : offset + limit] if limit > 0 else specs[offset:]
        now = self.clock.now_ms()
        return {
            "products": [product_body(self.market, s, now) for s in specs],
            "num_products": total,
            "pagination": None,
        }

    def _spec(self, request: web.Request) -> Any:
        spec = self.market.by_name.get(request.match_info["product_id"])
        if spec is None:
            raise CoinbaseError(404, "NOT_FOUND", "ProductID not found")
        return spec

    def product(self, request: web.Request) -> dict[str, Any]:
        return product_body(self.market, self._spec(request), self.clock.now_ms())

    def candles(self, request: web.Request) -> dict[str, Any]:
        spec = self._spec(request)
        timeframe = COINBASE_GRANULARITIES.get(request.query.get("granularity", ""))
        if timeframe is None:
            raise _invalid("granularity argument is invalid")
        step = TIMEFRAME_MS[timeframe]
        start_s, end_s = _seconds(request, "start"), _seconds(request, "end")
        if end_s < start_s:
            raise _invalid("start and end argument is invalid - end must be after start")
        if (end_s - start_s) * 1000 // step > MAX_CANDLES:
            raise _invalid(
                "start and end argument is invalid - number of candles requested should be "
                f"less than {MAX_CANDLES}"
            )
        limit = min(int(request.query.get("limit") or MAX_CANDLES), MAX_CANDLES)
        rows = self._rows(spec, step, start_s * 1000, end_s * 1000)[-limit:] if limit > 0 else []
        now = self.clock.now_ms()
        closed = [s for s, _ in rows if s + step <= now]
        self.truth.record_many("coinbase", spec.name, timeframe, closed)
        return {"candles": [_candle_row(s, bar, spec.decimals) for s, bar in reversed(rows)]}

    def _rows(self, spec: Any, step: int, start_ms: int, end_ms: int) -> list[Any]:
        """Buckets with start_ms <= start < end_ms, inside the served history, oldest first."""
        floor = self.clock.start_ms - self.config.history_minutes * 60_000
        first = max(start_ms, floor)
        first += (-first) % step
        now = self.clock.now_ms()
        last = min(end_ms - 1, now)
        return coinbase_series(self.market, spec, step, first, last, now)

    def accounts(self, request: web.Request) -> dict[str, Any]:
        return accounts_body(self.market)


def _seconds(request: web.Request, name: str) -> int:
    raw = request.query.get(name)
    try:
        return int(raw) if raw is not None else _raise_missing(name)
    except ValueError:
        raise _invalid(f"{name} argument is invalid") from None


def _raise_missing(name: str) -> int:
    raise _invalid(f"{name} argument is invalid")


def _candle_row(start_ms: int, bar: Any, decimals: int) -> dict[str, str]:
    return {
        "start": str(start_ms // 1000),
        "low": price_trimmed(bar.low, decimals),
        "high": price_trimmed(bar.high, decimals),
        "open": price_trimmed(bar.open, decimals),
        "close": price_trimmed(bar.close, decimals),
        "volume": trimmed(bar.volume),
    }


def _error_response(exc: CoinbaseError, headers: dict[str, str]) -> web.Response:
    body = {"error": exc.error, "error_details": exc.message, "message": exc.message}
    return web.json_response(body, status=exc.status, headers=headers)
