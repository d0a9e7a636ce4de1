"""Coinbase Advanced Trade REST calls (paths appended to the row's `rest_url`), rate-limited."""

from __future__ import annotations

import ssl
from urllib.parse import quote, urlencode, urlsplit

from livermore_common.exchanges.base import Credentials
from livermore_common.exchanges.coinbase import schemas as s
from livermore_common.exchanges.http import HttpTransport
from livermore_common.exchanges.ratelimit import RateLimiter
from livermore_common.exchanges.signing import coinbase_jwt, format_jwt_uri

BROKERAGE = "/api/v3/brokerage"
PRODUCTS_PATH = f"{BROKERAGE}/market/products"
TIME_PATH = f"{BROKERAGE}/time"
ACCOUNTS_PATH = f"{BROKERAGE}/accounts"
MAX_CANDLES = 350  # per request, documented limit
ACCOUNTS_PAGE = 250


class CoinbaseRestClient:
    """Thin typed wrappers over the endpoints the adapter uses."""

    def __init__(
        self,
        rest_url: str,
        *,
        limiter: RateLimiter,
        timeout_s: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.http = HttpTransport(
            rest_url,
            venue="coinbase",
            limiter=limiter,
            timeout_s=timeout_s,
            ssl_context=ssl_context,
        )
        # The JWT `uri` claim names the host the request goes to.
        self.host = urlsplit(rest_url).netloc

    async def server_time(self) -> s.ServerTimeResponse:
        return await self.http.get_json(TIME_PATH, s.ServerTimeResponse)

    async def candles(
        self, product_id: str, granularity: str, start_s: int, end_s: int
    ) -> list[s.RestCandle]:
        """Buckets with start in [start_s, end_s] (newest first, as Coinbase sends them)."""
        query = urlencode({"start": start_s, "end": end_s, "granularity": granularity})
        path = f"{PRODUCTS_PATH}/{quote(product_id, safe='')}/candles"
        response = await self.http.get_json(path, s.CandlesResponse, query=query)
        return response.candles

    async def products(self) -> list[s.Product]:
        response = await self.http.get_json(
            PRODUCTS_PATH, s.ProductsResponse, query="product_type=SPOT"
        )
        return response.products

    async def accounts(self, credentials: Credentials) -> list[s.Account]:
        """Every account page (cursor pagination); a fresh JWT per request, as Coinbase asks."""
        accounts: list[s.Account] = []
        cursor = ""
        for _ in range(1000):  # a bound, in case a server keeps answering has_next forever
            params = {"limit": ACCOUNTS_PAGE, **({"cursor": cursor} if cursor else {})}
            token = coinbase_jwt(
                credentials.api_key,
                credentials.api_secret.reveal(),
                uri=format_jwt_uri("GET", self.host, ACCOUNTS_PATH),
            )
            page = await self.http.get_json(
                ACCOUNTS_PATH,
                s.AccountsResponse,
                query=urlencode(params),
                headers={"Authorization": f"Bearer {token}"},
            )
            accounts.extend(page.accounts)
            if not page.has_next or not page.cursor or page.cursor == cursor:
                break
            cursor = page.cursor
        return accounts

    async def aclose(self) -> None:
        await self.http.aclose()
