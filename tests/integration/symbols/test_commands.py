"""`refresh-symbols` on the control channel: signed, answered once, refused when unauthenticated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import msgspec
import pytest

from livermore_common import control, messages
from livermore_common.control import ControlClient
from livermore_common.messages import ControlResponse, SymbolList
from services.symbols.commands import RefreshCommands
from tests.helpers import eventually
from tests.integration.gateway.support import auth_headers, gateway_settings, running_gateway

from .conftest import World

pytestmark = pytest.mark.integration

SECRET = "symbols-control-secret-0123456789"


@dataclass
class Listening:
    world: World
    # Every response published while the test ran, whoever sent the command.
    heard: list[ControlResponse] = field(default_factory=list)

    def statuses(self, command_id: str) -> list[str]:
        return [r.status for r in self.heard if r.command_id == command_id]


@pytest.fixture
async def listening(world: World) -> AsyncIterator[Listening]:
    """Two manager replicas listening for commands (only one may answer each command)."""
    state = Listening(world)
    stop = asyncio.Event()
    replicas = [RefreshCommands(world.manager(), SECRET) for _ in range(2)]
    tasks = [asyncio.create_task(r.run(stop)) for r in replicas]
    pubsub = world.redis.pubsub()
    await pubsub.subscribe(world.keys.control_responses_channel)

    async def collect() -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if message is not None:
                try:
                    state.heard.append(messages.decode(message["data"], ControlResponse))
                except msgspec.MsgspecError:
                    pass

    collector = asyncio.create_task(collect())

    async def subscribed() -> bool:
        counts = await world.redis.pubsub_numsub(world.keys.control_channel)
        return bool(counts and counts[0][1] >= 2)

    await eventually(subscribed, 10)
    yield state
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    collector.cancel()
    await pubsub.aclose()


async def send(
    world: World, exchange: str, secret: str = SECRET, expect: int = 1
) -> list[ControlResponse]:
    async with ControlClient(world.redis, world.keys, secret) as client:
        return await client.send("refresh-symbols", exchange, timeout=30, expect=expect)


async def test_signed_refresh_is_acked_then_answered_once(listening: Listening) -> None:
    world = listening.world
    first = await send(world, "coinbase")
    assert [r.status for r in first] == ["ack", "success"]
    (summary,) = first[1].data["exchanges"]  # type: ignore[index]
    assert summary["exchange"] == "coinbase" and summary["tier1"] == 3
    assert summary["changed"] is True and summary["accounts_ok"] == 1
    raw = await world.redis.get(world.keys.symbol_list_key(1))
    assert messages.decode(raw, SymbolList).symbols[0].tier == 1
    assert not await world.redis.exists(world.keys.symbol_list_key(2))  # only what was asked

    second = await send(world, "*")
    assert [r.status for r in second] == ["ack", "success"]
    done = {s["exchange"]: s for s in second[1].data["exchanges"]}  # type: ignore[index]
    assert set(done) == {"coinbase", "binance"} and done["coinbase"]["changed"] is False
    assert done["binance"]["accounts_failed"] == 1  # mallory's wrong secret
    # The second replica never answered the first command (its refresh would have ended by now).
    assert listening.statuses(first[0].command_id) == ["ack", "success"]
    text = repr(listening.heard)
    for secret in world.secret_values:
        assert secret not in text


async def test_unauthenticated_commands_are_refused(listening: Listening) -> None:
    world = listening.world
    responses = await send(world, "binance", secret="not-the-secret-but-long-enough", expect=2)
    assert [r.status for r in responses] == ["error", "error"]  # each replica refuses it
    assert all("signature" in (r.message or "") for r in responses)
    for command in (
        control.new_command("refresh-symbols", "binance"),  # unsigned
        control.sign(control.new_command("refresh-symbols", "binance", now_ms=1), SECRET),  # stale
    ):
        await world.redis.publish(world.keys.control_channel, messages.encode(command))
        refusals = await eventually(lambda c=command: listening.statuses(c.id), 10)
        assert refusals == ["error", "error"]
    assert not await world.redis.exists(world.keys.symbol_list_key(2))


async def test_other_verbs_and_unserved_exchanges_get_no_answer(listening: Listening) -> None:
    world = listening.world
    async with ControlClient(world.redis, world.keys, SECRET) as client:
        assert await client.send("start", "coinbase", timeout=1) == []
        assert await client.send("refresh-symbols", "kraken", timeout=1) == []
    assert not await world.redis.exists(world.keys.symbol_list_key(1))


async def test_gateway_relays_refresh_symbols_to_one_manager(
    listening: Listening, redis_url: str
) -> None:
    """The admin page's "Refresh symbols": the gateway signs the command, one of the two
    manager replicas refreshes the exchange, and the HTTP answer carries its counts."""
    world = listening.world
    settings = gateway_settings(
        redis_url=redis_url,
        database_url=world.database_url,
        namespace=world.keys.namespace,
        control_secret=SECRET,
        command_timeout=30,
    )
    async with (
        running_gateway(settings) as base,
        aiohttp.ClientSession(headers=auth_headers()) as http,
    ):
        async with http.post(f"{base}/api/exchanges/coinbase/refresh-symbols") as resp:
            body = await resp.json()
            assert resp.status == 200, body
        assert body["command"] == "refresh-symbols" and body["ok"] is True
        assert [r["status"] for r in body["responses"]] == ["ack", "success"]
        (summary,) = body["responses"][1]["data"]["exchanges"]
        assert summary["exchange"] == "coinbase" and summary["tier1"] == 3
        raw = await world.redis.get(world.keys.symbol_list_key(1))
        assert [s.symbol for s in messages.decode(raw, SymbolList).symbols][:3] == (
            await world.venue_top("coinbase", 3)
        )
        assert listening.statuses(body["command_id"]) == ["ack", "success"]


async def test_gateway_refresh_without_a_manager_is_504(world: World, redis_url: str) -> None:
    settings = gateway_settings(
        redis_url=redis_url,
        database_url=world.database_url,
        namespace=world.keys.namespace,
        control_secret=SECRET,
    )
    async with (
        running_gateway(settings) as base,
        aiohttp.ClientSession(headers=auth_headers()) as http,
    ):
        url = f"{base}/api/exchanges/binance/refresh-symbols"
        async with http.post(url, json={"timeout": 0.5}) as resp:
            body = await resp.json()
            assert resp.status == 504
        assert "no symbol manager answered 'refresh-symbols' for binance" in body["error"]
    assert not await world.redis.exists(world.keys.symbol_list_key(2))
