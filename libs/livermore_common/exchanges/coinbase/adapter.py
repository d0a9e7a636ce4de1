"""The Coinbase Advanced Trade adapter the factory returns for rows named `coinbase`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from livermore_common.errors import ConfigurationError
from livermore_common.exchanges.base import (
    AdapterOptions,
    Balance,
    Capabilities,
    Credentials,
    ExchangeInfo,
    SymbolVolume,
)
from livermore_common.exchanges.coinbase import parse
from livermore_common.exchanges.coinbase.client import MAX_CANDLES, CoinbaseRestClient
from livermore_common.exchanges.coinbase.feed import CoinbaseFeed
from livermore_common.exchanges.ratelimit import RateLimiter, limit_value
from livermore_common.exchanges.signing import coinbase_jwt
from livermore_common.exchanges.tls import client_context
from livermore_common.exchanges.validation import InvalidFrame
from livermore_common.logs import get_logger
from livermore_common.messages import Candle
from livermore_common.timeframes import interval_ms

GRANULARITY = {
    "1m": "ONE_MINUTE",
    "5m": "FIVE_MINUTE",
    "15m": "FIFTEEN_MINUTE",
    "30m": "THIRTY_MINUTE",
    "1h": "ONE_HOUR",
    "2h": "TWO_HOUR",
    "6h": "SIX_HOUR",
    "1d": "ONE_DAY",
}

CAPABILITIES = Capabilities(
    native_timeframes=("1m", "5m"),
    rest_timeframes=tuple(GRANULARITY),
    max_candles_per_request=MAX_CANDLES,
    rest_newest_first=True,
    expected_message_interval_s=1.0,  # the heartbeats channel ticks every second
)

# `exchanges.api_limits` keys read here, with the published limits as defaults.
DEFAULT_REST_RPS = 10.0
DEFAULT_WS_MESSAGES_PER_SECOND = 8.0


class CoinbaseAdapter:
    """REST + live feed for Coinbase Advanced Trade, built from one `exchanges` row."""

    capabilities = CAPABILITIES

    def __init__(
        self,
        info: ExchangeInfo,
        *,
        credentials: Credentials | None = None,
        options: AdapterOptions | None = None,
    ) -> None:
        self.info = info
        self.options = options or AdapterOptions()
        self._credentials = credentials
        limits = info.api_limits
        rps = limit_value(limits, "rest_requests_per_second", DEFAULT_REST_RPS)
        self._ws_rate = limit_value(
            limits, "ws_messages_per_second", DEFAULT_WS_MESSAGES_PER_SECOND
        )
        self.rest = CoinbaseRestClient(
            info.rest_url,
            limiter=RateLimiter.per_second(rps),
            timeout_s=self.options.http_timeout_s,
            ssl_context=client_context(self.options.ca_file),
        )
        self._horizon = 0  # latest venue time seen (ms); later than any closed bucket end
        self._feeds: list[CoinbaseFeed] = []
        self.log = get_logger("livermore.exchanges", exchange=info.name)

    async def server_time(self) -> int:
        try:
            now = parse.server_time_ms(await self.rest.server_time())
        except InvalidFrame as exc:
            raise ConfigurationError(f"coinbase server time unreadable: {exc}") from None
        self._horizon = max(self._horizon, now)
        return now

    async def _closed_before(self, end_ms: int) -> int:
        """A venue time no earlier than needed to judge closes up to `end_ms`."""
        if self._horizon >= end_ms:
            return self._horizon
        return await self.server_time()

    async def fetch_candles(
        self, symbol: str, timeframe: str, start_ms: int, end_ms: int
    ) -> list[Candle]:
        granularity = GRANULARITY.get(timeframe)
        if granularity is None:
            raise ConfigurationError(f"coinbase REST has no {timeframe} candles")
        step = interval_ms(timeframe)
        # Only closed buckets: start + step <= venue now.
        stop = min(end_ms, await self._closed_before(end_ms) - step + 1)
        page_start = -(-start_ms // step) * step
        found: dict[int, Candle] = {}
        while page_start < stop:
            page_end = min(stop, page_start + MAX_CANDLES * step)
            # `end` is inclusive on Coinbase's side: stop one second short of the next page.
            rows = await self.rest.candles(
                symbol, granularity, page_start // 1000, (page_end - 1) // 1000
            )
            self._collect(rows, page_start, page_end, found)
            page_start = page_end
        return [found[ts] for ts in sorted(found)]

    def _collect(self, rows: Sequence[Any], lo: int, hi: int, found: dict[int, Candle]) -> None:
        for row in rows:
            try:
                candle = parse.rest_candle(row)
            except InvalidFrame as exc:
                self.log.warning("REST candle dropped", reason=str(exc))
                continue
            if lo <= candle.timestamp < hi:
                found[candle.timestamp] = candle

    async def top_symbols(self, limit: int, *, quotes: Sequence[str] = ()) -> list[SymbolVolume]:
        wanted = {q.upper() for q in quotes}
        ranked = [
            v
            for v in map(parse.symbol_volume, await self.rest.products())
            if v is not None and (not wanted or v.quote.upper() in wanted)
        ]
        ranked.sort(key=lambda v: (-v.volume_24h, v.symbol))
        return ranked[: max(0, limit)]

    async def fetch_balances(self, credentials: Credentials) -> list[Balance]:
        accounts = await self.rest.accounts(credentials)
        return [b for b in map(parse.balance, accounts) if b is not None]

    def _jwt_factory(self) -> Callable[[], str | None]:
        creds = self._credentials
        if creds is None:
            return lambda: None
        return lambda: coinbase_jwt(creds.api_key, creds.api_secret.reveal())

    async def open_feed(self, symbols: Sequence[str], timeframes: Sequence[str]) -> CoinbaseFeed:
        # The venue time now: closes after it that the feed does not see become FeedGaps.
        opened_at = await self.server_time()
        feed = CoinbaseFeed(
            ws_url=self.info.ws_url,
            products=symbols,
            timeframes=timeframes,
            options=self.options,
            # One message at a time, comfortably under the venue's per-second cap.
            send_limiter=RateLimiter(rate=max(1.0, self._ws_rate - 1), capacity=1),
            jwt_factory=self._jwt_factory(),
            opened_at=opened_at,
        )
        try:
            await feed.start()
        except BaseException:
            await feed.aclose()
            raise
        self._feeds = [f for f in self._feeds if not f.closed] + [feed]
        return feed

    async def aclose(self) -> None:
        feeds, self._feeds = self._feeds, []
        for feed in feeds:
            await feed.aclose()
        await self.rest.aclose()

    async def __aenter__(self) -> CoinbaseAdapter:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
