"""The gateway against real Redis and Postgres: auth, errors, relay, reads and the live feed."""

from __future__ import annotations

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis

from livermore_common import messages
from livermore_common.keys import KeySpace
from livermore_common.messages import LifecycleEvent, SymbolEntry, SymbolList
from services.gateway.config import GatewaySettings

from .support import (
    TOKEN,
    FakeIngestor,
    SseReader,
    auth_headers,
    now_ms,
    running_gateway,
    sample_alert,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-the-token"}, {"Authorization": TOKEN}],
    ids=["missing", "wrong", "no-scheme"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/exchanges"),
        ("POST", "/api/exchanges/coinbase/start"),
        ("GET", "/api/alerts"),
        ("GET", "/api/events"),
        ("GET", "/api/openapi.yaml"),
    ],
)
async def test_api_refuses_a_missing_or_wrong_token(
    gateway: str, http: aiohttp.ClientSession, headers, method, path
) -> None:
    async with http.request(method, gateway + path, headers=headers) as resp:
        assert resp.status == 401
        body = await resp.json()
        assert body["error"]
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert TOKEN not in await resp.text()


async def test_health_and_admin_page_need_no_token(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(gateway + "/healthz") as resp:
        assert resp.status == 200 and (await resp.json())["status"] == "ok"
    async with http.get(gateway + "/") as resp:
        assert resp.status == 200
        assert 'data-testid="token-input"' in await resp.text()
    async with http.get(gateway + "/static/admin.js") as resp:
        assert resp.status == 200


async def test_exchanges_list_rows_with_live_status(
    gateway: str, authed: aiohttp.ClientSession, fake_ingestor: FakeIngestor
) -> None:
    async with authed.get(gateway + "/api/exchanges") as resp:
        assert resp.status == 200
        body = await resp.json()
    by_name = {e["name"]: e for e in body["exchanges"]}
    assert by_name["coinbase"]["id"] == 1 and by_name["binance"]["id"] == 2
    coinbase = by_name["coinbase"]
    assert coinbase["connection_state"] == "idle"
    assert [i["instance_id"] for i in coinbase["instances"]] == ["fake-1"]
    assert by_name["binance"]["connection_state"] == "unknown"
    assert by_name["binance"]["instances"] == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/exchanges/kraken/status"),
        ("POST", "/api/exchanges/kraken/start"),
        ("POST", "/api/exchanges/999/stop"),
        ("GET", "/api/exchanges/kraken/symbols"),
        ("GET", "/api/alerts?exchange=kraken"),
        ("GET", "/api/lifecycle?exchange=kraken"),
    ],
)
async def test_unknown_exchange_is_404_with_a_reason(
    gateway: str, authed: aiohttp.ClientSession, method, path
) -> None:
    async with authed.request(method, gateway + path) as resp:
        assert resp.status == 404
        assert "unknown exchange" in (await resp.json())["error"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/exchanges/coinbase/start", b"{not json"),
        ("POST", "/api/exchanges/coinbase/start", b'{"unexpected": 1}'),
        ("POST", "/api/exchanges/coinbase/stop", b'{"params": []}'),
        ("POST", "/api/exchanges/coinbase/stop", b'{"timeout": -1}'),
        ("GET", "/api/alerts?limit=0", None),
        ("GET", "/api/alerts?limit=abc", None),
        ("GET", "/api/lifecycle?limit=100000", None),
    ],
)
async def test_malformed_input_is_400_with_a_reason(
    gateway: str, authed: aiohttp.ClientSession, method, path, body
) -> None:
    async with authed.request(method, gateway + path, data=body) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]


async def test_unknown_api_route_answers_json(gateway: str, authed: aiohttp.ClientSession) -> None:
    async with authed.get(gateway + "/api/nothing-here") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]


async def test_start_and_stop_are_relayed_signed_and_answered(
    gateway: str, authed: aiohttp.ClientSession, fake_ingestor: FakeIngestor
) -> None:
    async with authed.post(gateway + "/api/exchanges/coinbase/start") as resp:
        assert resp.status == 200, await resp.text()
        body = await resp.json()
    assert body["command"] == "start" and body["exchange"]["name"] == "coinbase"
    assert [r["status"] for r in body["responses"]] == ["ack", "success"]
    assert {r["command_id"] for r in body["responses"]} == {body["command_id"]}
    assert [c.command for c in fake_ingestor.verified] == ["start"]
    assert fake_ingestor.verified[0].id == body["command_id"]
    assert fake_ingestor.refused == []

    async with authed.get(gateway + "/api/exchanges/1/status") as resp:
        status = await resp.json()
    assert status["connection_state"] == "connected"
    assert status["instances"][0]["connection_state"] == "connected"
    assert isinstance(status["instances"][0]["connected_at"], int)

    async with authed.post(gateway + "/api/exchanges/1/stop", json={"timeout": 2}) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert [r["status"] for r in body["responses"]] == ["ack", "success"]
    async with authed.get(gateway + "/api/exchanges/coinbase/status") as resp:
        assert (await resp.json())["connection_state"] == "idle"


async def test_every_live_instance_answers_the_relayed_command(
    gateway: str,
    authed: aiohttp.ClientSession,
    fake_ingestor: FakeIngestor,
    redis_client: aioredis.Redis,
    keyspace: KeySpace,
) -> None:
    async with FakeIngestor(redis_client, keyspace, instance_id="fake-2") as second:
        async with authed.post(gateway + "/api/exchanges/coinbase/start") as resp:
            assert resp.status == 200
            body = await resp.json()
        finals = [r for r in body["responses"] if r["status"] != "ack"]
        assert sorted(r["instance_id"] for r in finals) == ["fake-1", "fake-2"]
        assert len(second.verified) == 1
        async with authed.get(gateway + "/api/exchanges/coinbase/status") as resp:
            status = await resp.json()
        assert [i["connection_state"] for i in status["instances"]] == ["connected"] * 2


async def test_repeated_start_reports_already_started(
    gateway: str, authed: aiohttp.ClientSession, fake_ingestor: FakeIngestor
) -> None:
    for _ in range(2):
        async with authed.post(gateway + "/api/exchanges/coinbase/start") as resp:
            body = await resp.json()
    assert resp.status == 200
    assert body["responses"][-1]["status"] == "already_started"


async def test_no_ingestor_answering_is_504(gateway: str, authed: aiohttp.ClientSession) -> None:
    async with authed.post(gateway + "/api/exchanges/binance/start", json={"timeout": 0.5}) as resp:
        assert resp.status == 504
        body = await resp.json()
    assert "no ingestor answered" in body["error"] and "binance" in body["error"]
    assert body["responses"] == []


async def test_ingestor_refusing_the_signature_is_502(
    gateway: str,
    authed: aiohttp.ClientSession,
    redis_client: aioredis.Redis,
    keyspace: KeySpace,
) -> None:
    # An ingestor configured with another secret refuses the gateway's commands.
    async with FakeIngestor(redis_client, keyspace, secret="some-other-secret-0123456") as fake:
        async with authed.post(gateway + "/api/exchanges/coinbase/stop") as resp:
            assert resp.status == 502
            assert (await resp.json())["error"]
        assert fake.verified == [] and len(fake.refused) == 1


async def test_without_control_secret_commands_are_refused_with_503(
    settings: GatewaySettings, authed: aiohttp.ClientSession, redis_client: aioredis.Redis
) -> None:
    common = type(settings.common)(
        redis_url=settings.common.redis_url,
        database_url=settings.common.database_url,
        namespace=settings.common.namespace,
    )
    unsigned = type(settings)(common=common, token=settings.token, port=settings.port)
    async with running_gateway(unsigned) as base:
        async with authed.post(base + "/api/exchanges/coinbase/start") as resp:
            assert resp.status == 503
            assert "LIVERMORE_CONTROL_SECRET" in (await resp.json())["error"]


async def test_symbols_join_table_rows_and_the_merged_list(
    gateway: str,
    authed: aiohttp.ClientSession,
    migrated_db: str,
    redis_client: aioredis.Redis,
    keyspace: KeySpace,
) -> None:
    conn = await asyncpg.connect(migrated_db)
    try:
        await conn.executemany(
            "INSERT INTO exchange_symbols (exchange_id, symbol, base, quote, volume_24h,"
            " volume_rank, tier) VALUES (1, $1, $2, 'USD', $3, $4, 1)",
            [("BTC-USD", "BTC", 9e8, 1), ("ETH-USD", "ETH", 5e8, 2)],
        )
    finally:
        await conn.close()
    merged = SymbolList(
        exchange_id=1,
        updated_at=now_ms(),
        symbols=(
            SymbolEntry(symbol="BTC-USD", tier=1, volume_rank=1, user_ids=(3,)),
            SymbolEntry(symbol="ETH-USD", tier=1, volume_rank=2),
            SymbolEntry(symbol="XLM-USD", tier=2, user_ids=(3,)),
        ),
    )
    await redis_client.set(keyspace.symbol_list_key(1), messages.encode(merged))
    async with authed.get(gateway + "/api/exchanges/coinbase/symbols") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["symbol_list_updated_at"] == merged.updated_at
    assert [(s["symbol"], s["tier"]) for s in body["symbols"]] == [
        ("BTC-USD", 1),
        ("ETH-USD", 1),
        ("XLM-USD", 2),
    ]
    assert body["symbols"][0]["volume_24h"] == 9e8
    async with authed.get(gateway + "/api/exchanges/binance/symbols") as resp:
        assert (await resp.json())["symbols"] == []


async def test_alerts_merge_history_and_stream_newest_first(
    gateway: str,
    authed: aiohttp.ClientSession,
    migrated_db: str,
    redis_client: aioredis.Redis,
    keyspace: KeySpace,
) -> None:
    conn = await asyncpg.connect(migrated_db)
    try:
        await conn.execute(
            "INSERT INTO alert_history (exchange_id, symbol, timeframe, alert_type, trigger_label,"
            " trigger_value, price, triggered_at, details, alert_id, candle_timestamp) VALUES"
            " (2, 'BTCUSDT', '1h', 'macdv', 'level_200', 210.5, 43000, to_timestamp(1700000000),"
            " '{\"stage\": \"overbought\"}', 'hist-1', 1699999200000)"
        )
    finally:
        await conn.close()
    await redis_client.xadd(keyspace.alert_stream, {"data": sample_alert("stream-1")})
    await redis_client.xadd(keyspace.alert_stream, {"data": b"not json"})
    async with authed.get(gateway + "/api/alerts") as resp:
        assert resp.status == 200
        alerts = (await resp.json())["alerts"]
    assert [a["id"] for a in alerts] == ["stream-1", "hist-1"]
    history = alerts[1]
    assert history["source_exchange_name"] == "binance"
    assert history["triggered_at"] == 1_700_000_000_000
    assert history["stage"] == "overbought"
    async with authed.get(gateway + "/api/alerts?exchange=binance&limit=5") as resp:
        assert [a["id"] for a in (await resp.json())["alerts"]] == ["hist-1"]
    async with authed.get(gateway + "/api/alerts?limit=1") as resp:
        assert [a["id"] for a in (await resp.json())["alerts"]] == ["stream-1"]


async def test_recent_lifecycle_events_come_from_the_stream(
    gateway: str, authed: aiohttp.ClientSession, fake_ingestor: FakeIngestor
) -> None:
    async with authed.post(gateway + "/api/exchanges/coinbase/start") as resp:
        assert resp.status == 200
    async with authed.get(gateway + "/api/lifecycle?exchange=coinbase") as resp:
        events = (await resp.json())["events"]
    assert [e["event"] for e in events] == [
        "exchange:connected",
        "exchange:connecting",
        "exchange:idle",
    ]


async def test_live_feed_delivers_alerts_of_every_exchange_and_lifecycle_events(
    gateway: str, authed: aiohttp.ClientSession, redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    async with authed.get(gateway + "/api/events") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        feed = SseReader(resp)
        await feed.wait_for("hello")
        await redis_client.publish(keyspace.alerts_channel(2), sample_alert("a-bin", 2, "binance"))
        await redis_client.publish(keyspace.alerts_channel(1), b'{"malformed": true}')
        await redis_client.publish(keyspace.alerts_channel(1), sample_alert("a-cb", 1, "coinbase"))
        event = LifecycleEvent(
            event="exchange:connected",
            exchange_id=1,
            exchange="coinbase",
            instance_id="x",
            timestamp=now_ms(),
        )
        await redis_client.publish(keyspace.control_responses_channel, messages.encode(event))
        first = await feed.wait_for("alert")
        second = await feed.wait_for("alert")
        lifecycle = await feed.wait_for("lifecycle")
    assert (first["id"], first["source_exchange_name"]) == ("a-bin", "binance")
    assert (second["id"], second["source_exchange_name"]) == ("a-cb", "coinbase")
    assert lifecycle["event"] == "exchange:connected" and lifecycle["exchange_id"] == 1


async def test_live_feed_accepts_the_session_cookie(
    gateway: str, authed: aiohttp.ClientSession, redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    async with authed.post(gateway + "/api/session") as resp:
        assert resp.status == 204
        cookie = resp.cookies["livermore_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert TOKEN not in cookie.value
    jar = {"livermore_session": cookie.value}
    async with aiohttp.ClientSession(cookies=jar) as browser_like:
        async with browser_like.get(gateway + "/api/events") as resp:
            assert resp.status == 200
            feed = SseReader(resp)
            await feed.wait_for("hello")
            await redis_client.publish(keyspace.alerts_channel(1), sample_alert("c-1"))
            assert (await feed.wait_for("alert"))["id"] == "c-1"
        # The cookie opens the feed only: commands still need the bearer token.
        async with browser_like.post(gateway + "/api/exchanges/coinbase/start") as resp:
            assert resp.status == 401


async def test_stopping_the_gateway_ends_open_streams(
    settings: GatewaySettings, redis_client: aioredis.Redis
) -> None:
    async with aiohttp.ClientSession(headers=auth_headers()) as client:
        async with running_gateway(settings) as base:
            resp = await client.get(base + "/api/events")
            feed = SseReader(resp)
            await feed.wait_for("hello")
        with pytest.raises((EOFError, aiohttp.ClientPayloadError)):
            await feed.next_event(timeout=5)
        resp.release()


async def test_live_feed_survives_losing_its_redis_connection(
    settings: GatewaySettings,
    redis_url: str,
    redis_client: aioredis.Redis,
    keyspace: KeySpace,
    namespace: str,
) -> None:
    name = "gwtest-" + namespace.replace(":", "-").strip("-")
    own = aioredis.Redis.from_url(redis_url, client_name=name)
    try:
        async with running_gateway(settings, own) as base:
            async with aiohttp.ClientSession(headers=auth_headers()) as client:
                async with client.get(base + "/api/events") as resp:
                    feed = SseReader(resp)
                    await feed.wait_for("hello")
                    # Kill only this gateway's subscriber connection (found by its client name).
                    clients = await redis_client.client_list(_type="pubsub")
                    ids = [c["id"] for c in clients if c.get("name") == name]
                    assert len(ids) == 1
                    await redis_client.client_kill_filter(_id=ids[0])
                    await feed.wait_for("resync", timeout=15)
                    await redis_client.publish(keyspace.alerts_channel(1), sample_alert("after"))
                    assert (await feed.wait_for("alert"))["id"] == "after"
    finally:
        await own.aclose()
