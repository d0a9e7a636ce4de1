"""Binance adapter against a local venue speaking the Spot REST and combined-stream protocols."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp import web

from livermore_common.errors import ProtocolError, RateLimitedError, TransientError
from livermore_common.exchanges import (
    AdapterOptions,
    ClosedCandle,
    Credentials,
    ExchangeInfo,
    FeedDropped,
    Heartbeat,
)
from livermore_common.exchanges.binance.adapter import BinanceAdapter
from tests.helpers import eventually
from tests.integration.exchanges.venue import Venue, WsSession, json_response, running

M = 60_000
T0 = 1_704_067_200_000
NOW = T0 + 2500 * M + 20_000
API_KEY, SECRET = "test-api-key", "test-secret"


def kline_row(ts: int, step: int) -> list[Any]:
    base = 100 + (ts // step) % 40
    return [
        ts,
        str(base),
        str(base + 2),
        str(base - 1),
        str(base + 1),
        "3.5",
        ts + step - 1,
        "350",
        7,
        "1",
        "100",
        "0",
    ]


class BinanceVenue(Venue):
    def __init__(self, fixtures: Path) -> None:
        super().__init__()
        self.fixtures = fixtures
        self.kline_calls: list[dict[str, str]] = []
        self.used_weight = 0
        for path, handler in [
            ("/api/v3/time", self.time),
            ("/api/v3/klines", self.klines),
            ("/api/v3/exchangeInfo", self.exchange_info),
            ("/api/v3/ticker/24hr", self.tickers),
            ("/api/v3/account", self.account),
        ]:
            self.get(path, handler)
        self.websocket("/stream", self.on_ws_message)
        self.refuse: set[str] = set()

    def weighed(self, body: Any, weight: int) -> web.Response:
        self.used_weight += weight
        return json_response(body, headers={"X-MBX-USED-WEIGHT-1M": str(self.used_weight)})

    async def time(self, request: web.Request) -> web.Response:
        return self.weighed({"serverTime": NOW}, 1)

    async def klines(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.kline_calls.append(q)
        limit = int(q["limit"])
        assert limit <= 1000 and q["symbol"] == "BTCUSDT"
        step = {"1m": M, "1h": 60 * M}[q["interval"]]
        start, end = int(q["startTime"]), int(q["endTime"])
        first = -(-start // step) * step
        rows = [kline_row(t, step) for t in range(first, min(end, NOW) + 1, step)][:limit]
        return self.weighed(rows, 2)

    async def exchange_info(self, request: web.Request) -> web.Response:
        return self.weighed(
            json.loads(
                (self.fixtures / "binance/exchange_info_excerpt_2021_real.json").read_text()
            ),
            20,
        )

    async def tickers(self, request: web.Request) -> web.Response:
        rows = [
            {"symbol": s, "quoteVolume": v}
            for s, v in [("ETHBTC", "10"), ("LTCBTC", "30"), ("BNBBTC", "20"), ("BCCBTC", "99")]
        ]
        return self.weighed(rows, 80)

    async def account(self, request: web.Request) -> web.Response:
        query = request.query_string
        payload, _, signature = query.rpartition("&signature=")
        expected = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if request.headers.get("X-MBX-APIKEY") != API_KEY or signature != expected:
            return json_response({"code": -1022, "msg": "Signature invalid."}, 401)
        params = dict(parse_qsl(payload))
        assert params["timestamp"] == str(NOW) and params["recvWindow"] == "5000"
        return self.weighed(json.loads((self.fixtures / "binance/account.json").read_text()), 20)

    async def on_ws_message(self, session: WsSession, message: Any) -> None:
        method = message.get("method")
        if method in self.refuse:
            await session.send(
                {"error": {"code": 4, "msg": "Too many subscriptions"}, "id": message["id"]}
            )
        elif method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            await session.send({"result": None, "id": message["id"]})


@pytest.fixture
async def venue(fixtures_dir: Path) -> AsyncIterator[BinanceVenue]:
    async with running(BinanceVenue(fixtures_dir)) as v:
        yield v  # type: ignore[misc]


def info(venue: Venue, name: str = "binance", **limits: Any) -> ExchangeInfo:
    return ExchangeInfo(
        id=2,
        name=name,
        display_name="Binance",
        ws_url=venue.ws_url,
        rest_url=venue.http_url,
        api_limits=limits,
    )


def kframe(symbol: str, t: int, close: str, final: bool = False, tf: str = "1m") -> str:
    k = {
        "t": t,
        "T": t + M - 1,
        "s": symbol,
        "i": tf,
        "f": 1,
        "L": 2,
        "o": "100",
        "c": close,
        "h": "110",
        "l": "90",
        "v": "2",
        "n": 2,
        "x": final,
        "q": "200",
        "V": "1",
        "Q": "100",
        "B": "0",
    }
    data = {"e": "kline", "E": t + (M if final else 1_000), "s": symbol, "k": k}
    return json.dumps({"stream": f"{symbol.lower()}@kline_{tf}", "data": data})


def streams_of(session: WsSession) -> list[str]:
    return session.query["streams"].split("/")


def closed_of(events: list[Any]) -> list[tuple[str, int, float]]:
    return [
        (e.symbol, e.candle.timestamp, e.candle.close)
        for e in events
        if isinstance(e, ClosedCandle)
    ]


async def _collect(feed: Any, into: list[Any]) -> None:
    async for event in feed:
        into.append(event)


# ---- REST -------------------------------------------------------------------------------------


async def test_fetch_candles_pages_oldest_first_and_drops_the_forming_kline(
    venue: BinanceVenue,
) -> None:
    async with BinanceAdapter(info(venue)) as adapter:
        candles = await adapter.fetch_candles("BTCUSDT", "1m", T0, T0 + 3000 * M)
    assert [c.timestamp for c in candles] == [T0 + i * M for i in range(2500)]
    assert [int(c["startTime"]) for c in venue.kline_calls] == [T0, T0 + 1000 * M, T0 + 2000 * M]
    assert candles[1].close == float(kline_row(T0 + M, M)[4])


async def test_used_weight_header_feeds_the_limiter(venue: BinanceVenue) -> None:
    async with BinanceAdapter(info(venue, rest_weight_per_minute=1000)) as adapter:
        venue.used_weight = 850  # another process on this IP used most of the minute
        await adapter.server_time()
        assert adapter.rest.limiter.tokens < 60  # 900 budget - 851 used, plus a little refill


@pytest.mark.parametrize("status", [429, 418])
async def test_rate_limit_statuses_raise_with_retry_after(fixtures_dir: Path, status: int) -> None:
    v = Venue()
    body = (fixtures_dir / "binance/rest_error_418_ip_banned.json").read_text()

    async def refuse(request: web.Request) -> web.Response:
        return json_response(body, status, {"Retry-After": "12"})

    v.get("/api/v3/time", refuse)
    async with running(v), BinanceAdapter(info(v)) as adapter:
        with pytest.raises(RateLimitedError) as caught:
            await adapter.server_time()
        assert caught.value.retry_after == 12.0
        assert "-1003" in str(caught.value)
        assert adapter.rest.limiter.reserve() > 11.0


async def test_top_symbols_trading_spot_by_quote_volume(venue: BinanceVenue) -> None:
    async with BinanceAdapter(info(venue, name="binance_us")) as adapter:
        top = await adapter.top_symbols(2)
    assert [(t.symbol, t.volume_24h) for t in top] == [("LTCBTC", 30.0), ("BNBBTC", 20.0)]


async def test_fetch_balances_signs_with_hmac_and_the_server_clock(venue: BinanceVenue) -> None:
    async with BinanceAdapter(info(venue)) as adapter:
        balances = await adapter.fetch_balances(Credentials(API_KEY, SECRET))
        assert [b.asset for b in balances] == ["BTC", "LTC"]
        with pytest.raises(Exception, match="Signature invalid") as caught:
            await adapter.fetch_balances(Credentials(API_KEY, "wrong-secret"))
        assert "wrong-secret" not in str(caught.value)


# ---- WebSocket ----------------------------------------------------------------------------------


async def test_feed_closes_klines_and_reports_pings(venue: BinanceVenue) -> None:
    async with BinanceAdapter(info(venue)) as adapter:
        feed = await adapter.open_feed(["BTCUSDT", "ETHUSDT"], ["1m", "5m", "3d"])
        events: list[Any] = []
        reader = asyncio.create_task(_collect(feed, events))
        session = venue.sessions[0]
        assert session.path == "/stream"
        assert sorted(streams_of(session)) == [
            "btcusdt@kline_1m",
            "btcusdt@kline_5m",
            "ethusdt@kline_1m",
            "ethusdt@kline_5m",
        ]
        await session.send(kframe("BTCUSDT", T0, "101"))
        await session.send(kframe("BTCUSDT", T0, "102", final=True))
        await session.send(kframe("ETHUSDT", T0, "50"))
        await session.send(kframe("ETHUSDT", T0 + M, "51"))  # final frame lost
        await session.send("y" * (2 << 20))
        await session.send('{"stream": "btcusdt@kline_1m", "data": {"e": "kline", "k": 5}}')
        await session.ping()
        await session.send(kframe("BTCUSDT", T0 + M, "103", final=True))
        await eventually(lambda: len(closed_of(events)) == 3)
        assert closed_of(events) == [
            ("BTCUSDT", T0, 102.0),
            ("ETHUSDT", T0, 50.0),
            ("BTCUSDT", T0 + M, 103.0),
        ]
        assert any(isinstance(e, Heartbeat) and e.exchange_time is None for e in events)
        await eventually(lambda: session.pongs == 1)  # `websockets` answered the venue's ping
        assert [type(e) for e in events if isinstance(e, FeedDropped)] == [FeedDropped] * 2
        assert feed.stats.gaps == 1 and feed.stats.oversized == 1

        await session.close()
        with pytest.raises(TransientError):
            await reader
        await feed.aclose()


async def test_streams_are_split_over_connections(venue: BinanceVenue) -> None:
    async with BinanceAdapter(info(venue, streams_per_connection=2)) as adapter:
        feed = await adapter.open_feed(["AAAUSDT", "BBBUSDT", "CCCUSDT"], ["1m"])
        assert sorted(len(streams_of(s)) for s in venue.sessions) == [1, 2]
        assert sorted(name for names in feed.streams for name in names) == [
            "aaausdt@kline_1m",
            "bbbusdt@kline_1m",
            "cccusdt@kline_1m",
        ]
        await feed.aclose()


async def test_update_symbols_subscribes_live_paced_under_five_per_second(
    venue: BinanceVenue,
) -> None:
    async with BinanceAdapter(info(venue)) as adapter:
        feed = await adapter.open_feed(["BTCUSDT"], ["1m"])
        for i in range(4):
            await feed.update_symbols(["BTCUSDT", f"X{i}USDT"])  # one SUBSCRIBE, one UNSUBSCRIBE
        session = venue.sessions[0]
        methods = [(m["method"], m["params"]) for m in session.received]
        assert methods[:3] == [
            ("SUBSCRIBE", ["x0usdt@kline_1m"]),
            ("UNSUBSCRIBE", ["x0usdt@kline_1m"]),
            ("SUBSCRIBE", ["x1usdt@kline_1m"]),
        ]
        assert len({m["id"] for m in session.received}) == len(session.received) == 7
        times = session.received_at
        # Never five control messages within one second (the venue's limit).
        assert all(times[i + 4] - times[i] >= 0.95 for i in range(len(times) - 4))
        assert feed.streams == [["btcusdt@kline_1m", "x3usdt@kline_1m"]]
        # Frames of the new stream are accepted, of the removed ones ignored.
        events: list[Any] = []
        reader = asyncio.create_task(_collect(feed, events))
        await session.send(kframe("X2USDT", T0, "1", final=True))
        await session.send(kframe("X3USDT", T0, "2", final=True))
        await eventually(lambda: closed_of(events))
        assert closed_of(events) == [("X3USDT", T0, 2.0)]
        reader.cancel()
        await feed.aclose()


async def test_refused_subscription_is_a_protocol_error(venue: BinanceVenue) -> None:
    venue.refuse.add("SUBSCRIBE")
    async with BinanceAdapter(info(venue)) as adapter:
        feed = await adapter.open_feed(["BTCUSDT"], ["1m"])
        with pytest.raises(ProtocolError, match="Too many subscriptions"):
            await feed.update_symbols(["BTCUSDT", "ETHUSDT"])
        await feed.aclose()


async def test_server_shutdown_replaces_the_socket_without_losing_the_feed(
    venue: BinanceVenue, fixtures_dir: Path
) -> None:
    async with BinanceAdapter(info(venue)) as adapter:
        feed = await adapter.open_feed(["BTCUSDT"], ["1m"])
        events: list[Any] = []
        reader = asyncio.create_task(_collect(feed, events))
        old = venue.sessions[0]
        await old.send(kframe("BTCUSDT", T0, "101"))
        await old.send((fixtures_dir / "binance/server_shutdown_combined.json").read_text())
        await eventually(lambda: len(venue.sessions) == 2)
        new = venue.sessions[1]
        assert streams_of(new) == streams_of(old)
        # Both sockets deliver the final frame during the overlap: one close only.
        await new.send(kframe("BTCUSDT", T0, "102", final=True))
        await old.send(kframe("BTCUSDT", T0, "102", final=True))
        await eventually(lambda: old.closed.is_set())  # we closed it once the new one streamed
        await new.send(kframe("BTCUSDT", T0 + M, "103", final=True))
        await eventually(lambda: len(closed_of(events)) == 2)
        assert closed_of(events) == [("BTCUSDT", T0, 102.0), ("BTCUSDT", T0 + M, 103.0)]
        assert feed.stats.rotations == 1 and not reader.done()
        reader.cancel()
        await feed.aclose()


async def test_sockets_rotate_before_their_lifetime_ends(venue: BinanceVenue) -> None:
    options = AdapterOptions(rotate_after_s=0.3)
    async with BinanceAdapter(info(venue), options=options) as adapter:
        feed = await adapter.open_feed(["BTCUSDT"], ["1m"])
        events: list[Any] = []
        reader = asyncio.create_task(_collect(feed, events))

        async def stream_to_newest() -> None:
            # The venue streams on every open socket, as Binance would.
            while True:
                for s in list(venue.sessions):
                    if not s.closed.is_set():
                        await s.send(kframe("BTCUSDT", T0, "101"))
                await asyncio.sleep(0.05)

        pusher = asyncio.create_task(stream_to_newest())
        await eventually(lambda: feed.stats.rotations >= 2)
        assert venue.sessions[0].closed.is_set() and not reader.done()
        pusher.cancel()
        reader.cancel()
        await feed.aclose()


async def test_frame_above_the_hard_cap_is_counted_and_ends_the_feed(venue: BinanceVenue) -> None:
    options = AdapterOptions(max_frame_bytes=1 << 20, hard_max_frame_bytes=2 << 20)
    async with BinanceAdapter(info(venue), options=options) as adapter:
        feed = await adapter.open_feed(["BTCUSDT"], ["1m"])
        events: list[Any] = []
        await venue.sessions[0].send("z" * (3 << 20))
        with pytest.raises(TransientError, match="hard size limit"):
            await _collect(feed, events)
        assert [type(e) for e in events] == [FeedDropped] and feed.stats.oversized == 1
        await feed.aclose()
