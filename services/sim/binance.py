"""Binance Spot REST: `/api/v3/{ping,time,exchangeInfo,ticker/24hr,klines,account}`.

Request weight is counted per real minute and reported in `X-MBX-USED-WEIGHT-1M`; beyond the
limit, and under the http_error fault, answers are 429 (or 418) with `Retry-After` and the
venue's `{code, msg}` error body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from aiohttp import web

from services.sim.binance_info import account_body, exchange_info, ticker_24h
from services.sim.candles import binance_series
from services.sim.clock import SimClock
from services.sim.config import SimConfig
from services.sim.faults import Faults
from services.sim.formats import fixed8, price8
from services.sim.intervals import BINANCE_INTERVALS
from services.sim.market import Market
from services.sim.truth import Truth

INVALID_SYMBOL = (-1121, "Invalid symbol.")
INVALID_INTERVAL = (-1120, "Invalid interval.")


class BinanceError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


def _missing(name: str) -> BinanceError:
    return BinanceError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'.") from None


class BinanceRest:
    def __init__(
        self, market: Market, clock: SimClock, truth: Truth, faults: Faults, config: SimConfig
    ) -> None:
        self.market, self.clock, self.truth, self.faults = market, clock, truth, faults
        self.config = config
        self._window = 0
        self._weight = 0

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v3/ping", self._wrap(1, lambda r: {})),
            web.get("/api/v3/time", self._wrap(1, lambda r: {"serverTime": self.clock.now_ms()})),
            web.get("/api/v3/exchangeInfo", self._wrap(20, self.exchange_info)),
            web.get("/api/v3/ticker/24hr", self._wrap(None, self.ticker)),
            web.get("/api/v3/klines", self._wrap(2, self.klines)),
            web.get("/api/v3/account", self._wrap(20, self.account)),
        ]

    def _wrap(self, weight: int | None, handler: Any) -> Any:
        async def endpoint(request: web.Request) -> web.Response:
            cost = weight if weight is not None else _ticker_weight(request)
            used = self._use_weight(cost)
            headers = {"X-MBX-USED-WEIGHT-1M": str(used), "X-MBX-USED-WEIGHT": str(used)}
            fault = self.faults.take_http_error("binance")
            if fault is not None:
                return self._throttled(fault.status, fault.retry_after, headers)
            if used > self.config.binance_weight_limit_1m:
                return self._throttled(429, 60 - int(time.time()) % 60, headers)
            try:
                body = handler(request)
            except BinanceError as exc:
                return web.json_response(
                    {"code": exc.code, "msg": exc.msg}, status=exc.status, headers=headers
                )
            return web.json_response(body, headers=headers, dumps=_dumps)

        return endpoint

    def _use_weight(self, cost: int) -> int:
        window = int(time.time()) // 60  # real minutes: limits protect the real machine
        if window != self._window:
            self._window, self._weight = window, 0
        self._weight += cost
        return self._weight

    def _throttled(self, status: int, retry_after: int, headers: dict[str, str]) -> web.Response:
        limit = self.config.binance_weight_limit_1m
        if status == 418:
            until = self.clock.now_ms() + retry_after * 1000
            msg = (
                f"Way too much request weight used; IP banned until {until}. "
                "Please use the websocket for live updates to avoid bans."
            )
        else:
            msg = (
                f"Too much request weight used; current limit is {limit} request weight per "
                "1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API."
            )
        headers = {**headers, "Retry-After": str(max(1, retry_after))}
        return web.json_response({"code": -1003, "msg": msg}, status=status, headers=headers)

    # ---- endpoints ----------------------------------------------------------------------

    def _symbols(self, request: web.Request) -> list[Any] | None:
        one = request.query.get("symbol")
        many = request.query.get("symbols")
        if one:
            names = [one]
        elif many:
            try:
                names = json.loads(many)
            except ValueError:
                raise BinanceError(
                    -1100, "Illegal characters found in parameter 'symbols'."
                ) from None
        else:
            return None
        specs = [self.market.by_name.get(str(n)) for n in names]
        if any(s is None for s in specs):
            raise BinanceError(*INVALID_SYMBOL)
        return specs

    def exchange_info(self, request: web.Request) -> dict[str, Any]:
        specs = self._symbols(request) or list(self.market.symbols)
        return exchange_info(specs, self.clock.now_ms(), self.config)

    def ticker(self, request: web.Request) -> Any:
        specs = self._symbols(request)
        now = self.clock.now_ms()
        if specs is not None and "symbol" in request.query:
            return ticker_24h(self.market, specs[0], now)
        return [ticker_24h(self.market, s, now) for s in (specs or self.market.symbols)]

    def klines(self, request: web.Request) -> list[list[Any]]:
        name = request.query.get("symbol")
        if not name:
            raise _missing("symbol")
        interval = request.query.get("interval")
        if not interval:
            raise _missing("interval")
        spec = self.market.by_name.get(name)
        if spec is None:
            raise BinanceError(*INVALID_SYMBOL)
        step = BINANCE_INTERVALS.get(interval)
        if step is None:
            raise BinanceError(*INVALID_INTERVAL)
        limit = min(max(_int_param(request, "limit") or 500, 1), 1000)  # the venue caps at 1000
        first, last = self._kline_window(request, step, limit)
        now = self.clock.now_ms()
        rows = binance_series(self.market, spec, step, first, last, now)
        closed = [start for start, _ in rows if start + step <= now]
        self.truth.record_many("binance", spec.name, interval, closed)
        return [_kline_row(start, step, bar, spec.decimals) for start, bar in rows]

    def _kline_window(self, request: web.Request, step: int, limit: int) -> tuple[int, int]:
        start, end = _int_param(request, "startTime"), _int_param(request, "endTime")
        now = self.clock.now_ms()
        floor = self.clock.start_ms - self.config.history_minutes * 60_000
        floor += (-floor) % step
        if start is not None:
            first = max(start + (-start) % step, floor)
            last = first + (limit - 1) * step
            if end is not None:
                last = min(last, end - end % step)
            return first, min(last, now - now % step)
        last = min(end if end is not None else now, now)
        last -= last % step
        return max(last - (limit - 1) * step, floor), last

    def account(self, request: web.Request) -> dict[str, Any]:
        self._verify_signature(request)
        return account_body(self.market, self.clock.now_ms())

    def _verify_signature(self, request: web.Request) -> None:
        key, secret = self.config.binance_api_key, self.config.binance_api_secret
        if not key:
            return
        if request.headers.get("X-MBX-APIKEY") != key:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        query = request.query_string
        payload, _, signature = query.rpartition("&signature=")
        if not signature:
            raise _missing("signature")
        expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        timestamp = _int_param(request, "timestamp")
        if timestamp is None:
            raise _missing("timestamp")
        window = _int_param(request, "recvWindow") or 5000
        server = self.clock.now_ms()
        if timestamp >= server + 1000 or server - timestamp > window:
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")


def _ticker_weight(request: web.Request) -> int:
    if "symbol" in request.query:
        return 2
    raw = request.query.get("symbols")
    if raw is None:
        return 80
    n = raw.count(",") + 1
    return 2 if n <= 20 else 40 if n <= 100 else 80


def _kline_row(start: int, step: int, bar: Any, decimals: int) -> list[Any]:
    return [
        start,
        price8(bar.open, decimals),
        price8(bar.high, decimals),
        price8(bar.low, decimals),
        price8(bar.close, decimals),
        fixed8(bar.volume),
        start + step - 1,
        fixed8(bar.quote),
        bar.trades,
        fixed8(bar.taker_volume),
        fixed8(bar.taker_quote),
        "0",
    ]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)
