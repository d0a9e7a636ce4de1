"""The Binance Spot adapter the factory returns for rows named `binance` and `binance_us`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from livermore_common.exchanges.binance import parse
from livermore_common.exchanges.binance import schemas as s
from livermore_common.exchanges.binance.client import MAX_KLINES, BinanceRestClient
from livermore_common.exchanges.binance.feed import BinanceFeed
from livermore_common.exchanges.ratelimit import RateLimiter, limit_value
from livermore_common.exchanges.tls import client_context
from livermore_common.exchanges.validation import InvalidFrame
from livermore_common.logs import get_logger
from livermore_common.messages import Candle
from livermore_common.timeframes import interval_ms

# Binance interval names equal Livermore's for every timeframe Livermore knows.
INTERVALS = ("1m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "1d")

# `exchanges.api_limits` keys read here, with Binance's published limits as defaults.
DEFAULT_WEIGHT_PER_MINUTE = 6000.0
DEFAULT_WS_MESSAGES_PER_SECOND = 5.0
DEFAULT_STREAMS_PER_CONNECTION = 1024
DEFAULT_WS_CONNECTIONS_PER_5M = 300.0


def _capabilities(max_streams: int) -> Capabilities:
    return Capabilities(
        native_timeframes=INTERVALS,
        rest_timeframes=INTERVALS,
        max_candles_per_request=MAX_KLINES,
        rest_newest_first=False,
        max_streams_per_connection=max_streams,
        # Binance pings every 20 s; kline pushes may be sparser than that on a quiet market.
        expected_message_interval_s=20.0,
    )


class BinanceAdapter:
    """REST + live feed for Binance Spot (and Binance US), built from one `exchanges` row."""

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
        limits: Mapping[str, Any] = info.api_limits
        self._max_streams = int(
            limit_value(limits, "streams_per_connection", DEFAULT_STREAMS_PER_CONNECTION)
        )
        self.capabilities = _capabilities(self._max_streams)
        self._ws_rate = limit_value(
            limits, "ws_messages_per_second", DEFAULT_WS_MESSAGES_PER_SECOND
        )
        per_5m = limit_value(limits, "ws_connections_per_5m", DEFAULT_WS_CONNECTIONS_PER_5M)
        self._connect_limiter = RateLimiter(rate=per_5m / 300.0, capacity=max(1.0, per_5m / 10))
        weights = limits.get("rest_endpoint_weights")
        self.rest = BinanceRestClient(
            info.rest_url,
            limiter=RateLimiter.per_minute(
                limit_value(limits, "rest_weight_per_minute", DEFAULT_WEIGHT_PER_MINUTE)
            ),
            timeout_s=self.options.http_timeout_s,
            weights=weights if isinstance(weights, dict) else None,
            venue=info.name,
            ssl_context=client_context(self.options.ca_file),
        )
        self._horizon = 0
        self._feeds: list[BinanceFeed] = []
        self.log = get_logger("livermore.exchanges", exchange=info.name)

    async def server_time(self) -> int:
        now = await self.rest.server_time()
        self._horizon = max(self._horizon, now)
        return now

    async def _closed_before(self, end_ms: int) -> int:
        if self._horizon >= end_ms:
            return self._horizon
        return await self.server_time()

    async def fetch_candles(
        self, symbol: str, timeframe: str, start_ms: int, end_ms: int
    ) -> list[Candle]:
        if timeframe not in INTERVALS:
            raise ConfigurationError(f"{self.info.name} REST has no {timeframe} klines")
        step = interval_ms(timeframe)
        stop = min(end_ms, await self._closed_before(end_ms) - step + 1)
        cursor = -(-start_ms // step) * step
        found: dict[int, Candle] = {}
        while cursor < stop:
            rows = await self.rest.klines(symbol, timeframe, cursor, stop - 1)
            self._collect(rows, cursor, stop, found)
            if len(rows) < MAX_KLINES:
                break
            cursor = max(cursor + step, rows[-1].open_time + step)
        return [found[ts] for ts in sorted(found)]

    def _collect(
        self, rows: Sequence[s.RestKline], lo: int, hi: int, found: dict[int, Candle]
    ) -> None:
        for row in rows:
            try:
                candle = parse.rest_candle(row)
            except InvalidFrame as exc:
                self.log.warning("REST kline dropped", reason=str(exc))
                continue
            if lo <= candle.timestamp < hi:
                found[candle.timestamp] = candle

    async def top_symbols(self, limit: int, *, quotes: Sequence[str] = ()) -> list[SymbolVolume]:
        info = await self.rest.exchange_info()
        tickers = await self.rest.tickers_24h()
        return parse.symbol_volumes(info, tickers, quotes)[: max(0, limit)]

    async def fetch_balances(self, credentials: Credentials) -> list[Balance]:
        # Signed with the venue's clock: a skewed local clock would be refused (recvWindow).
        timestamp = await self.server_time()
        return parse.balances(await self.rest.account(credentials, timestamp_ms=timestamp))

    async def open_feed(self, symbols: Sequence[str], timeframes: Sequence[str]) -> BinanceFeed:
        # The venue time now: closes after it that the feed does not see become FeedGaps.
        opened_at = await self.server_time()
        feed = BinanceFeed(
            ws_url=self.info.ws_url,
            symbols=symbols,
            timeframes=[tf for tf in timeframes if tf in INTERVALS],
            options=self.options,
            max_streams=self._max_streams,
            messages_per_second=self._ws_rate,
            connect_limiter=self._connect_limiter,
            venue=self.info.name,
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

    async def __aenter__(self) -> BinanceAdapter:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
