"""The ingestor starts idle and is steered over channel:control (CTL-01..04, EXC-04)."""

from __future__ import annotations

import asyncio
import time

from livermore_common import control, messages
from livermore_common.control import ControlClient
from livermore_common.messages import ControlCommand, ControlResponse, LifecycleEvent
from tests.helpers import eventually

from .conftest import SECRET, settings_for


async def _status(redis_client, keyspace, ex):  # type: ignore[no-untyped-def]
    raw = await redis_client.hgetall(keyspace.exchange_status_key(ex))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def test_idle_start_stop_and_status_through_the_control_channel(
    sim,
    start_ingestor,
    database_url,
    redis_url,
    namespace,
    redis_client,
    keyspace,
) -> None:
    events: list[LifecycleEvent] = []
    sub = redis_client.pubsub()
    await sub.subscribe(keyspace.control_responses_channel)

    async def collect_events() -> None:
        while True:
            m = await sub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if m is not None:
                decoded = messages.decode_response(m["data"])
                if isinstance(decoded, LifecycleEvent):
                    events.append(decoded)

    collector = asyncio.create_task(collect_events())
    settings = settings_for("coinbase", database_url, redis_url, namespace, symbols=("BTC-USD",))
    running = await start_ingestor(settings)

    async def idle() -> bool:
        return (await _status(redis_client, keyspace, 1)).get("connection_state") == "idle"

    await eventually(idle, timeout=10)

    async with ControlClient(redis_client, keyspace, SECRET) as client:
        replies = await client.send("start", "coinbase", timeout=10)
        assert [r.status for r in replies] == ["ack", "success"]

        async def connected() -> bool:
            s = await _status(redis_client, keyspace, 1)
            return s.get("connection_state") == "connected" and bool(s.get("last_heartbeat"))

        await eventually(connected, timeout=15)
        first_beat = int((await _status(redis_client, keyspace, 1))["last_heartbeat"])

        async def beating() -> bool:
            return int((await _status(redis_client, keyspace, 1))["last_heartbeat"]) > first_beat

        await eventually(beating, timeout=10)
        again = await client.send("start", "coinbase", timeout=10)
        assert again[-1].status == "already_started"
        status = await client.send("getStatus", "1", timeout=10)
        data = status[-1].data or {}
        assert status[-1].status == "success"
        assert data["connection_state"] == "connected" and data["symbols"] == ["BTC-USD"]
        stopped = await client.send("stop", "coinbase", timeout=10)
        assert stopped[-1].status == "success"
        await eventually(idle, timeout=10)
        idle_again = await client.send("stop", "coinbase", timeout=10)
        assert idle_again[-1].status == "already_idle"

    await eventually(
        lambda: any(
            e.event == "exchange:disconnected" or e.event == "exchange:idle" for e in events
        ),
        timeout=5,
    )
    names = [e.event for e in events]
    assert names.index("exchange:connecting") < names.index("exchange:connected")
    assert all(e.exchange_id == 1 and e.exchange == "coinbase" for e in events)
    collector.cancel()
    await sub.aclose()
    assert running.ingestor.running is False


async def test_unauthenticated_stale_and_malformed_commands_change_nothing(
    sim,
    start_ingestor,
    database_url,
    redis_url,
    namespace,
    redis_client,
    keyspace,
) -> None:
    settings = settings_for(
        "binance", database_url, redis_url, namespace, autostart=True, symbols=("BTCUSDT",)
    )
    running = await start_ingestor(settings)

    async def connected() -> bool:
        raw = await redis_client.hget(keyspace.exchange_status_key(2), "connection_state")
        return raw == b"connected"

    await eventually(connected, timeout=15)
    sub = redis_client.pubsub()
    await sub.subscribe(keyspace.control_responses_channel)
    now = int(time.time() * 1000)
    forged = ControlCommand(
        id="forged", command="stop", exchange="binance", issued_at=now, signature="0" * 64
    )
    stale = control.sign(
        ControlCommand(id="stale", command="stop", exchange="binance", issued_at=now - 31_000),
        SECRET,
    )
    unsigned = ControlCommand(id="unsigned", command="stop", exchange="binance", issued_at=now)
    for cmd in (forged, stale, unsigned):
        await redis_client.publish(keyspace.control_channel, messages.encode(cmd))
    await redis_client.publish(keyspace.control_channel, b"{not json")
    errors: dict[str, str] = {}

    async def all_refused() -> bool:
        while m := await sub.get_message(ignore_subscribe_messages=True, timeout=0.1):
            decoded = messages.decode_response(m["data"])
            if isinstance(decoded, ControlResponse) and decoded.status == "error":
                errors[decoded.command_id] = decoded.message or ""
        return {"forged", "stale", "unsigned", ""} <= set(errors)

    await eventually(all_refused, timeout=10)
    assert "signature" in errors["forged"] and "stale" in errors["stale"]
    assert SECRET not in " ".join(errors.values())
    assert running.ingestor.running
    assert await redis_client.hget(keyspace.exchange_status_key(2), "connection_state") == (
        b"connected"
    )
    # A correctly signed command replayed verbatim is handled once only.
    good = control.sign(control.new_command("getStatus", "binance"), SECRET)
    for _ in range(2):
        await redis_client.publish(keyspace.control_channel, messages.encode(good))
    finals: list[ControlResponse] = []

    async def answered_once() -> bool:
        while m := await sub.get_message(ignore_subscribe_messages=True, timeout=0.1):
            d = messages.decode_response(m["data"])
            if isinstance(d, ControlResponse) and d.command_id == good.id and d.status != "ack":
                finals.append(d)
        return len(finals) >= 1

    await eventually(answered_once, timeout=10)
    await asyncio.sleep(0.5)
    await answered_once()
    assert len(finals) == 1
    await sub.aclose()
