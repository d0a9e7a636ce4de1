"""ControlClient against a tiny responder on real Redis: answers, refusals, replays, events."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from livermore_common import control
from livermore_common.errors import AuthenticationError
from livermore_common.keys import KeySpace
from livermore_common.messages import ControlResponse, LifecycleEvent
from tests.helpers import eventually

pytestmark = pytest.mark.integration

SECRET = "integration-secret"


def now_ms() -> int:
    return int(time.time() * 1000)


class Responder:
    """One 'ingestor instance': verifies, claims, acks, answers start/stop/getStatus."""

    def __init__(self, redis: aioredis.Redis, keys: KeySpace, instance_id: str) -> None:
        self.redis, self.keys, self.instance_id = redis, keys, instance_id
        self.started = False
        self.handled: list[str] = []

    async def run(self, ready: asyncio.Event) -> None:
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(self.keys.control_channel)
        while (await pubsub.get_message(timeout=1.0)) is None:
            pass
        ready.set()
        try:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    await self.handle(message["data"])
        finally:
            await pubsub.aclose()

    async def answer(self, command_id: str, status: str, message: str | None = None) -> None:
        response = ControlResponse(
            command_id=command_id,
            status=status,
            exchange="coinbase",
            instance_id=self.instance_id,
            timestamp=now_ms(),
            message=message,
            data={"started": self.started} if status == "success" else None,
        )
        await control.respond(self.redis, self.keys, response)

    async def handle(self, data: bytes) -> None:
        try:
            command = control.decode_command(data)
            control.verify(command, SECRET, now_ms=now_ms())
        except AuthenticationError as exc:
            with contextlib.suppress(AuthenticationError):
                await self.answer(control.decode_command(data).id, "error", str(exc))
            return
        if not await control.claim_command_id(
            self.redis, self.keys, command.id, claimant=self.instance_id
        ):
            return  # a replay
        self.handled.append(command.command)
        await self.answer(command.id, "ack")
        await self.answer(command.id, self.execute(command.command))
        if command.command == "start" and self.started:
            event = LifecycleEvent(
                event="exchange:connected",
                exchange_id=1,
                exchange="coinbase",
                instance_id=self.instance_id,
                timestamp=now_ms(),
            )
            await control.publish_event(self.redis, self.keys, event)

    def execute(self, verb: str) -> str:
        if verb == "start":
            if self.started:
                return "already_started"
            self.started = True
        elif verb == "stop":
            if not self.started:
                return "already_idle"
            self.started = False
        return "success"


@contextlib.asynccontextmanager
async def responders(
    redis: aioredis.Redis, keys: KeySpace, *names: str
) -> AsyncIterator[list[Responder]]:
    running = [Responder(redis, keys, name) for name in names]
    readiness = [asyncio.Event() for _ in running]
    tasks = [asyncio.create_task(r.run(e)) for r, e in zip(running, readiness)]
    try:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in readiness)), 10)
        yield running
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_commands_are_acked_then_answered(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    async with (
        responders(redis_client, keyspace, "i1"),
        control.ControlClient(redis_client, keyspace, SECRET) as client,
    ):
        first = await client.send("start", "coinbase")
        assert [r.status for r in first] == ["ack", "success"]
        assert first[1].data == {"started": True} and first[1].instance_id == "i1"
        assert [r.status for r in await client.send("start", "coinbase")] == [
            "ack",
            "already_started",
        ]
        assert (await client.send("stop", "coinbase"))[-1].status == "success"
        assert (await client.send("stop", "coinbase"))[-1].status == "already_idle"


async def test_a_client_with_the_wrong_secret_gets_an_error_and_changes_nothing(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    async with responders(redis_client, keyspace, "i1") as (responder,):
        intruder = control.ControlClient(redis_client, keyspace, "guessed")
        (answer,) = await intruder.send("start", "coinbase")
        assert answer.status == "error" and answer.message.startswith("bad signature")
        assert responder.handled == [] and not responder.started


async def test_each_instance_handles_a_broadcast_once_and_replays_are_ignored(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    spy = redis_client.pubsub()
    await spy.subscribe(keyspace.control_channel)
    async with responders(redis_client, keyspace, "i1", "i2") as running:
        client = control.ControlClient(redis_client, keyspace, SECRET)
        answers = await client.send("getStatus", "coinbase", expect=2)
        finals = [r for r in answers if r.status in control.FINAL_STATUSES]
        assert sorted(r.instance_id for r in finals) == ["i1", "i2"]
        captured = None
        while captured is None:
            message = await spy.get_message(ignore_subscribe_messages=True, timeout=1.0)
            captured = message["data"] if message else None
        await redis_client.publish(keyspace.control_channel, captured)  # a replay
        # Each responder handles messages in order: once this one is answered, the replay was
        # seen (and dropped) by both.
        assert len(await client.send("getStatus", "coinbase", expect=2)) == 4
        assert [r.handled for r in running] == [["getStatus"] * 2, ["getStatus"] * 2]
    await spy.aclose()


async def test_expect_final_false_collects_until_the_timeout(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    async with responders(redis_client, keyspace, "i1", "i2"):
        client = control.ControlClient(redis_client, keyspace, SECRET)
        answers = await client.send("getStatus", "coinbase", timeout=1.0, expect_final=False)
        assert sorted((r.instance_id, r.status) for r in answers) == [
            ("i1", "ack"),
            ("i1", "success"),
            ("i2", "ack"),
            ("i2", "success"),
        ]


async def test_lifecycle_events_are_observable(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    async with responders(redis_client, keyspace, "i1"):
        client = control.ControlClient(redis_client, keyspace, SECRET)
        events = client.events()
        first = asyncio.ensure_future(anext(events))

        async def listening() -> bool:
            ((_, count),) = await redis_client.pubsub_numsub(keyspace.control_responses_channel)
            return count >= 1

        await eventually(listening)
        await client.send("start", "coinbase")
        event = await asyncio.wait_for(first, 10)
        await events.aclose()
    assert (event.event, event.instance_id) == ("exchange:connected", "i1")
    (_, fields), *_ = await redis_client.xrange(keyspace.lifecycle_stream)
    assert b"exchange:connected" in fields[b"data"]


async def test_nobody_listening_and_no_secret(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    client = control.ControlClient(redis_client, keyspace, SECRET)
    # PUBLISH reached nobody: the call returns at once instead of waiting out its 60 s timeout.
    assert await asyncio.wait_for(client.send("start", "coinbase", timeout=60), 20) == []
    with pytest.raises(AuthenticationError, match="LIVERMORE_CONTROL_SECRET is not set"):
        await control.ControlClient(redis_client, keyspace, "").send("start", "coinbase")
