"""Coinbase adapter against a local venue speaking the Advanced Trade REST and WS protocols."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from livermore_common.errors import (
    AuthenticationError,
    ProtocolError,
    RateLimitedError,
    TransientError,
)
from livermore_common.exchanges import (
    AdapterOptions,
    ClosedCandle,
    Credentials,
    ExchangeInfo,
    FeedDropped,
    FeedGap,
    Heartbeat,
)
from livermore_common.exchanges.coinbase.adapter import CoinbaseAdapter
from tests.helpers import eventually
from tests.integration.exchanges.venue import Venue, WsSession, json_response, running

M = 60_000
T0 = 1_704_067_200_000
NOW = T0 + 1000 * M + 30_000  # the venue clock: 30 s into minute 1000
GRANULARITY_S = {"ONE_MINUTE": 60, "FIVE_MINUTE": 300, "ONE_HOUR": 3600}


def bar(ts_ms: int) -> dict[str, str]:
    base = 100 + (ts_ms // M) % 50
    return {
        "start": str(ts_ms // 1000),
        "low": str(base - 1),
        "high": str(base + 2),
        "open": str(base),
        "close": str(base + 1),
        "volume": "1.5",
    }


class CoinbaseVenue(Venue):
    def __init__(self, fixtures: Path) -> None:
        super().__init__()
        self.fixtures = fixtures
        self.candle_calls: list[tuple[int, int, str]] = []
        self.get("/api/v3/brokerage/time", self.time)
        self.get("/api/v3/brokerage/market/products/{pid}/candles", self.candles)
        self.get("/api/v3/brokerage/market/products", self.products)

    async def time(self, request: web.Request) -> web.Response:
        return json_response(
            {"iso": "x", "epochSeconds": str(NOW // 1000), "epochMillis": str(NOW)}
        )

    async def candles(self, request: web.Request) -> web.Response:
        start, end = int(request.query["start"]), int(request.query["end"])
        granularity = request.query["granularity"]
        step = GRANULARITY_S[granularity]
        if (end - start) / step > 350:  # what Coinbase refuses
            return json_response({"error": "INVALID_ARGUMENT", "message": "too many candles"}, 400)
        assert request.match_info["pid"] == "BTC-USD"
        self.candle_calls.append((start, end, granularity))
        first = -(-start // step) * step
        buckets = [ts for ts in range(first, end + 1, step) if ts * 1000 <= NOW]
        return json_response({"candles": [bar(ts * 1000) for ts in reversed(buckets)]})

    async def products(self, request: web.Request) -> web.Response:
        assert request.query.get("product_type") == "SPOT"
        return json_response((self.fixtures / "coinbase/products.json").read_text())


def ws_venue() -> Venue:
    """A venue with the WebSocket at /ws and the server time (asked when a feed opens)."""
    v = Venue()
    v.websocket("/ws")

    async def time(request: web.Request) -> web.Response:
        return json_response({"epochMillis": str(NOW)})

    v.get("/api/v3/brokerage/time", time)
    return v


def info(venue: Venue, **limits: Any) -> ExchangeInfo:
    return ExchangeInfo(
        id=1,
        name="coinbase",
        display_name="Coinbase",
        ws_url=f"{venue.ws_url}/ws",
        rest_url=venue.http_url,
        api_limits=limits,
    )


@pytest.fixture
async def venue(fixtures_dir: Path) -> AsyncIterator[CoinbaseVenue]:
    async with running(CoinbaseVenue(fixtures_dir)) as v:
        yield v  # type: ignore[misc]


# ---- REST -------------------------------------------------------------------------------------


async def test_fetch_candles_pages_by_350_and_returns_closed_ascending(
    venue: CoinbaseVenue,
) -> None:
    async with CoinbaseAdapter(info(venue)) as adapter:
        candles = await adapter.fetch_candles("BTC-USD", "1m", T0, T0 + 2000 * M)
    stamps = [c.timestamp for c in candles]
    assert stamps == [T0 + i * M for i in range(1000)]  # minute 1000 is still forming at NOW
    assert candles[5].open == float(bar(T0 + 5 * M)["open"])
    assert len(venue.candle_calls) == 3
    assert all(g == "ONE_MINUTE" for *_, g in venue.candle_calls)
    starts = [s for s, _, _ in venue.candle_calls]
    assert starts == sorted(starts)  # explicit, non-overlapping pages


async def test_fetch_candles_aligns_and_respects_the_window(venue: CoinbaseVenue) -> None:
    async with CoinbaseAdapter(info(venue)) as adapter:
        candles = await adapter.fetch_candles("BTC-USD", "5m", T0 + 1, T0 + 20 * M)
    assert [c.timestamp for c in candles] == [T0 + 5 * M, T0 + 10 * M, T0 + 15 * M]


async def test_unsupported_rest_timeframe_is_a_configuration_error(venue: CoinbaseVenue) -> None:
    async with CoinbaseAdapter(info(venue)) as adapter:
        assert "4h" not in adapter.capabilities.rest_timeframes
        with pytest.raises(Exception, match="no 4h candles"):
            await adapter.fetch_candles("BTC-USD", "4h", T0, T0 + M)


async def test_top_symbols_and_server_time(venue: CoinbaseVenue) -> None:
    async with CoinbaseAdapter(info(venue)) as adapter:
        assert await adapter.server_time() == NOW
        top = await adapter.top_symbols(10)
        assert [t.symbol for t in top] == ["BTC-USD"]
        assert await adapter.top_symbols(10, quotes=["EUR"]) == []


@pytest.mark.parametrize(
    ("status", "error", "headers"),
    [
        (429, RateLimitedError, {"Retry-After": "7"}),
        (401, AuthenticationError, {}),
        (400, ProtocolError, {}),
        (503, TransientError, {}),
    ],
)
async def test_http_errors_map_onto_the_error_tree(status, error, headers) -> None:
    v = Venue()

    async def refuse(request: web.Request) -> web.Response:
        return json_response({"error": "X", "message": "refused"}, status, headers)

    v.get("/api/v3/brokerage/time", refuse)
    async with running(v), CoinbaseAdapter(info(v)) as adapter:
        with pytest.raises(error) as caught:
            await adapter.server_time()
        if status == 429:
            assert caught.value.retry_after == 7.0
            assert adapter.rest.http.limiter.reserve() > 6.0  # everyone waits


async def test_garbage_body_is_a_protocol_error_and_dead_server_transient(
    venue: CoinbaseVenue,
) -> None:
    v = Venue()

    async def garbage(request: web.Request) -> web.Response:
        return web.Response(text="<html>", content_type="text/html")

    v.get("/api/v3/brokerage/time", garbage)
    async with running(v), CoinbaseAdapter(info(v)) as adapter:
        with pytest.raises(ProtocolError):
            await adapter.server_time()
    dead = ExchangeInfo(
        id=1,
        name="coinbase",
        display_name="c",
        ws_url="ws://127.0.0.1:9",
        rest_url="http://127.0.0.1:9",
    )
    async with CoinbaseAdapter(dead) as adapter:
        with pytest.raises(TransientError):
            await adapter.server_time()
        with pytest.raises(TransientError):
            await adapter.open_feed(["BTC-USD"], ["1m"])


def _pem_and_public() -> tuple[str, ec.EllipticCurvePublicKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, key.public_key()


def _claims(token: str, public: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    def d(p: str) -> bytes:
        return base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))

    h, c, s = token.split(".")
    raw = d(s)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(der, f"{h}.{c}".encode(), ec.ECDSA(hashes.SHA256()))
    return json.loads(d(c))


async def test_fetch_balances_sends_a_verifiable_jwt_per_page(fixtures_dir: Path) -> None:
    pem, public = _pem_and_public()
    v = Venue()
    body = json.loads((fixtures_dir / "coinbase/accounts.json").read_text())
    seen: list[dict[str, Any]] = []

    async def accounts(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return json_response({"error": "UNAUTHENTICATED"}, 401)
        seen.append(_claims(auth[7:], public))
        first = request.query.get("cursor") is None
        page = {
            **body,
            "accounts": body["accounts"][:1] if first else body["accounts"][1:],
            "has_next": first,
            "cursor": "c2" if first else "",
        }
        return json_response(page)

    v.get("/api/v3/brokerage/accounts", accounts)
    async with running(v), CoinbaseAdapter(info(v)) as adapter:
        balances = await adapter.fetch_balances(Credentials("organizations/o/apiKeys/k", pem))
    assert [(b.asset, round(b.quantity, 8)) for b in balances] == [
        ("BTC", 1.23956789),
        ("USD", 10450.5),
    ]
    assert len(seen) == 2
    assert seen[0]["uri"] == f"GET 127.0.0.1:{v.port}/api/v3/brokerage/accounts"
    assert seen[0]["sub"] == "organizations/o/apiKeys/k" and seen[0]["iss"] == "cdp"


# ---- WebSocket ----------------------------------------------------------------------------------


class Script:
    """Coinbase frames with a running sequence number."""

    def __init__(self) -> None:
        self.seq = -1

    def frame(self, channel: str, ts: str, events: list[dict[str, Any]], skip: int = 0) -> str:
        self.seq += 1 + skip
        return json.dumps(
            {
                "channel": channel,
                "client_id": "",
                "timestamp": ts,
                "sequence_num": self.seq,
                "events": events,
            }
        )

    def candle(self, ts: str, start_s: int, close: str, kind: str = "update") -> str:
        c = {**bar(start_s * 1000), "close": close, "product_id": "BTC-USD"}
        c["high"] = max(c["high"], close, key=float)
        return self.frame("candles", ts, [{"type": kind, "candles": [c]}])

    def heartbeat(self, iso: str) -> str:
        go = iso.replace("T", " ").replace("Z", "") + " +0000 UTC m=+1.000000001"
        return self.frame("heartbeats", iso, [{"current_time": go, "heartbeat_counter": self.seq}])


async def _collect(feed: Any, into: list[Any]) -> None:
    async for event in feed:
        into.append(event)


async def test_feed_subscribes_one_channel_per_message_and_yields_events() -> None:
    v = ws_venue()
    script = Script()
    async with running(v), CoinbaseAdapter(info(v)) as adapter:
        feed = await adapter.open_feed(["BTC-USD"], ["1m", "5m"])
        events: list[Any] = []
        reader = asyncio.create_task(_collect(feed, events))
        await eventually(lambda: v.sessions and len(v.sessions[0].received) == 3)
        session: WsSession = v.sessions[0]
        assert session.path == "/ws"  # ws_url used as is
        assert [(m["type"], m["channel"], m.get("product_ids")) for m in session.received] == [
            ("subscribe", "heartbeats", None),
            ("subscribe", "candles", ["BTC-USD"]),
            ("subscribe", "market_trades", ["BTC-USD"]),
        ]
        assert all("jwt" not in m for m in session.received)  # no credentials configured

        start = T0 // 1000
        await session.send(script.heartbeat("2024-01-01T00:00:01Z"))
        await session.send(script.candle("2024-01-01T00:00:02Z", start, "101", "snapshot"))
        await session.send(script.candle("2024-01-01T00:04:59Z", start, "103"))
        await session.send("x" * (1 << 20 + 1))  # oversized: dropped, the socket lives on
        await session.send("{not json")
        await session.send(script.candle("2024-01-01T00:05:01Z", start + 300, "104"))
        await session.ping()
        await session.send(
            script.heartbeat("2024-01-01T00:05:02Z").replace(
                f'"sequence_num": {script.seq}', f'"sequence_num": {script.seq + 5}'
            )
        )

        def kinds() -> list[str]:
            return [type(e).__name__ for e in events]

        await eventually(lambda: "FeedGap" in kinds())
        closed = [e for e in events if isinstance(e, ClosedCandle)]
        assert [(c.timeframe, c.candle.timestamp, c.candle.close) for c in closed] == [
            ("5m", T0, 103.0)
        ]
        assert [e for e in events if isinstance(e, Heartbeat) and e.exchange_time is None]  # ping
        assert [e.exchange_time for e in events if isinstance(e, Heartbeat) and e.exchange_time][
            :1
        ] == [T0 + 1000]
        drops = [e.reason for e in events if isinstance(e, FeedDropped)]
        assert len(drops) == 2 and drops[0].startswith("oversized")
        assert feed.stats.oversized == 1 and feed.stats.pings >= 1

        await session.close()
        with pytest.raises(TransientError):
            await reader
        await feed.aclose()
        await feed.aclose()  # idempotent


async def test_update_symbols_and_jwt_when_credentials_are_configured() -> None:
    pem, public = _pem_and_public()
    v = ws_venue()
    creds = Credentials("organizations/o/apiKeys/k", pem)
    async with running(v), CoinbaseAdapter(info(v), credentials=creds) as adapter:
        feed = await adapter.open_feed(["BTC-USD", "ETH-USD"], ["1m"])
        await feed.update_symbols(["ETH-USD", "SOL-USD"])
        await eventually(lambda: v.sessions and len(v.sessions[0].received) == 4)
        received = v.sessions[0].received
        assert [(m["type"], m["channel"], m.get("product_ids")) for m in received] == [
            ("subscribe", "heartbeats", None),
            ("subscribe", "market_trades", ["BTC-USD", "ETH-USD"]),
            ("unsubscribe", "market_trades", ["BTC-USD"]),
            ("subscribe", "market_trades", ["SOL-USD"]),
        ]
        claims = [_claims(m["jwt"], public) for m in received]
        assert all("uri" not in c and c["sub"] == creds.api_key for c in claims)
        await feed.aclose()


async def test_stall_ends_the_feed_with_a_transient_error() -> None:
    v = ws_venue()
    async with (
        running(v),
        CoinbaseAdapter(info(v), options=AdapterOptions(stall_timeout_s=0.3)) as a,
    ):
        feed = await a.open_feed(["BTC-USD"], ["5m"])
        with pytest.raises(TransientError, match="stalled"):
            async for _ in feed:
                pass
        assert feed.stats.stalls == 1
        await feed.aclose()


async def test_gap_event_reports_all_products() -> None:
    v = ws_venue()
    script = Script()
    async with running(v), CoinbaseAdapter(info(v)) as adapter:
        feed = await adapter.open_feed(["BTC-USD", "ETH-USD"], ["5m"])
        await eventually(lambda: v.sessions)
        await v.sessions[0].send(script.heartbeat("2024-01-01T00:00:01Z"))
        script.seq += 2
        await v.sessions[0].send(script.heartbeat("2024-01-01T00:00:02Z"))
        iterator = aiter(feed)
        events = [await anext(iterator) for _ in range(3)]
        gaps = [e for e in events if isinstance(e, FeedGap)]
        assert gaps and gaps[0].symbols == ("BTC-USD", "ETH-USD")
        await feed.aclose()
