"""REST transport shared by the venues: one aiohttp session, a rate limiter, errors translated.

Status → error: 429/418 → RateLimitedError(retry_after) after telling the limiter to hold every
request until then; 401/403 → AuthenticationError; other 4xx → ProtocolError; 5xx, network errors
and timeouts → TransientError. Messages name the venue, status and path, never the query string
(signed queries carry signatures) nor any header.
"""

from __future__ import annotations

import email.utils
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import aiohttp
import msgspec
from yarl import URL

from livermore_common.errors import (
    AuthenticationError,
    ProtocolError,
    RateLimitedError,
    TransientError,
)
from livermore_common.exchanges.ratelimit import RateLimiter

T = TypeVar("T")

DEFAULT_RETRY_AFTER_S = 60.0
HeaderHook = Callable[[Mapping[str, str]], None]


class _VenueError(msgspec.Struct):
    """Error bodies: Binance {code, msg}; Coinbase {error, message} (fields optional)."""

    code: int | str | None = None
    msg: str | None = None
    error: str | None = None
    message: str | None = None


def parse_retry_after(value: str | None, *, default: float = DEFAULT_RETRY_AFTER_S) -> float:
    """`Retry-After` as seconds (delta-seconds or an HTTP date); `default` when absent or bad."""
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


def _venue_message(body: bytes) -> str:
    try:
        err = msgspec.json.decode(body, type=_VenueError)
    except msgspec.DecodeError:
        return ""
    text = err.msg or err.message or err.error or ""
    code = f" (code {err.code})" if err.code is not None else ""
    return f": {text[:200]}{code}" if text else code


class HttpTransport:
    """GETs JSON from `{base_url}{path}` within the limiter's budget. Async context manager."""

    def __init__(
        self,
        base_url: str,
        *,
        venue: str,
        limiter: RateLimiter,
        timeout_s: float = 15.0,
        on_headers: HeaderHook | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """`ssl_context`: for https:// (None = the system's trust store)."""
        self.base_url = base_url.rstrip("/")
        self.venue = venue
        self.limiter = limiter
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._on_headers = on_headers
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError(f"{self.venue} HTTP transport is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._ssl) if self._ssl is not None else None
            self._session = aiohttp.ClientSession(timeout=self._timeout, connector=connector)
        return self._session

    async def get(
        self,
        path: str,
        *,
        query: str = "",
        headers: Mapping[str, str] | None = None,
        cost: float = 1.0,
    ) -> bytes:
        """The raw body of a 200 response. `query` is sent exactly as given (signatures)."""
        await self.limiter.acquire(cost)
        url = URL(f"{self.base_url}{path}" + (f"?{query}" if query else ""), encoded=True)
        try:
            async with self._get_session().get(url, headers=headers) as resp:
                body = await resp.read()
                if self._on_headers is not None:
                    self._on_headers(resp.headers)
                self._check(resp.status, resp.headers, body, path)
                return body
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise TransientError(f"{self.venue} GET {path} failed: {type(exc).__name__}") from None

    async def get_json(
        self,
        path: str,
        type: type[T],
        *,
        query: str = "",
        headers: Mapping[str, str] | None = None,
        cost: float = 1.0,
    ) -> T:
        body = await self.get(path, query=query, headers=headers, cost=cost)
        try:
            return msgspec.json.decode(body, type=type)
        except msgspec.DecodeError as exc:
            raise ProtocolError(f"{self.venue} GET {path}: unexpected response ({exc})") from None

    def _check(self, status: int, headers: Mapping[str, str], body: bytes, path: str) -> None:
        if status < 300:
            return
        where = f"{self.venue} GET {path} -> HTTP {status}{_venue_message(body)}"
        if status in (418, 429):
            retry_after = parse_retry_after(headers.get("Retry-After"))
            self.limiter.penalize(retry_after)
            raise RateLimitedError(where, retry_after=retry_after)
        if status in (401, 403):
            raise AuthenticationError(where)
        if status >= 500 or status == 408:
            raise TransientError(where)
        raise ProtocolError(where)

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> HttpTransport:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
