"""Binance Spot REST calls (paths appended to the row's `rest_url`), within the weight budget.

Every request first takes its documented weight from the limiter; every response's
`X-MBX-USED-WEIGHT-1M` tells the limiter how much of the minute Binance has counted, so several
processes sharing one IP still stay under the limit; 429/418 + Retry-After hold all requests.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from urllib.parse import urlencode

from livermore_common.exchanges.base import Credentials
from livermore_common.exchanges.binance import schemas as s
from livermore_common.exchanges.http import HttpTransport
from livermore_common.exchanges.ratelimit import RateLimiter
from livermore_common.exchanges.signing import binance_signed_query

API = "/api/v3"
MAX_KLINES = 1000  # per request, documented limit
USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"

# Documented request weights (overridable per row: api_limits["rest_endpoint_weights"]).
DEFAULT_WEIGHTS: dict[str, float] = {
    "klines": 2,
    "exchangeInfo": 20,
    "ticker/24hr": 80,  # all symbols
    "time": 1,
    "account": 20,
}


class BinanceRestClient:
    """Thin typed wrappers over the endpoints the adapter uses."""

    def __init__(
        self,
        rest_url: str,
        *,
        limiter: RateLimiter,
        timeout_s: float,
        weights: Mapping[str, float] | None = None,
        venue: str = "binance",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.limiter = limiter
        self.weights = {**DEFAULT_WEIGHTS, **(weights or {})}
        self.http = HttpTransport(
            rest_url,
            venue=venue,
            limiter=limiter,
            timeout_s=timeout_s,
            on_headers=self._observe_weight,
            ssl_context=ssl_context,
        )

    def _observe_weight(self, headers: Mapping[str, str]) -> None:
        used = headers.get(USED_WEIGHT_HEADER)
        if used is not None and used.isdigit():
            # Our budget is below the venue limit, so this keeps the same margin.
            self.limiter.observe_used(float(used))

    async def server_time(self) -> int:
        response = await self.http.get_json(
            f"{API}/time", s.ServerTimeResponse, cost=self.weights["time"]
        )
        return response.serverTime

    async def klines(
        self, symbol: str, interval: str, start_ms: int, end_ms: int
    ) -> list[s.RestKline]:
        """Up to 1000 klines with open time in [start_ms, end_ms], oldest first."""
        query = urlencode(
            {
                "symbol": symbol,
                "interval": interval,
                "startTime": start_ms,
                "endTime": end_ms,
                "limit": MAX_KLINES,
            }
        )
        return await self.http.get_json(
            f"{API}/klines", list[s.RestKline], query=query, cost=self.weights["klines"]
        )

    async def exchange_info(self) -> s.ExchangeInfoResponse:
        return await self.http.get_json(
            f"{API}/exchangeInfo", s.ExchangeInfoResponse, cost=self.weights["exchangeInfo"]
        )

    async def tickers_24h(self) -> list[s.Ticker24h]:
        return await self.http.get_json(
            f"{API}/ticker/24hr", list[s.Ticker24h], cost=self.weights["ticker/24hr"]
        )

    async def account(self, credentials: Credentials, *, timestamp_ms: int) -> s.AccountResponse:
        query = binance_signed_query(
            {"omitZeroBalances": "true"},
            credentials.api_secret.reveal(),
            timestamp_ms=timestamp_ms,
        )
        return await self.http.get_json(
            f"{API}/account",
            s.AccountResponse,
            query=query,
            headers={"X-MBX-APIKEY": credentials.api_key},
            cost=self.weights["account"],
        )

    async def aclose(self) -> None:
        await self.http.aclose()
