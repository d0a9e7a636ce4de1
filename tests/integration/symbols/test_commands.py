"""`refresh-symbols` on the control channel: signed, answered once, refused when unauthenticated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import msgspec
import pytest

from livermore_common import control, messages
from livermore_common.control import ControlClient
from livermore_common.messages import ControlResponse, SymbolList
from services.symbols.commands import RefreshCommands
from tests.helpers import eventually

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
