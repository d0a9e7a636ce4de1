"""Fixtures for the command-line clients and the example bot: environments, CLI runs, responders."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from livermore_common import control, messages
from livermore_common.config import CommonSettings, Secret
from livermore_common.errors import AuthenticationError
from livermore_common.keys import KeySpace
from livermore_common.messages import ControlCommand, ControlResponse
from livermore_common.migrate import migrate

# The ingestor tests' fixtures (simulator, a database pointed at it, in-process ingestors).
from tests.integration.ingestor.conftest import (  # noqa: F401
    SECRET,
    pointed_db,
    sim,
    start_ingestor,
)

ROOT = Path(__file__).resolve().parents[3]
INGESTOR_VERBS = frozenset({"start", "stop", "getStatus", "force-backfill"})


@pytest.fixture
async def migrated_url(database_url: str) -> str:
    await migrate(database_url)
    return database_url


@pytest.fixture
def client_env(redis_url: str, database_url: str, namespace: str) -> dict[str, str]:
    """The environment a client process sees: this test's Redis namespace, database and secret."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVERMORE_")}
    env.update(
        LIVERMORE_REDIS_URL=redis_url,
        LIVERMORE_DATABASE_URL=database_url,
        LIVERMORE_NAMESPACE=namespace,
        LIVERMORE_CONTROL_SECRET=SECRET,
        LIVERMORE_LOG_FORMAT="console",
    )
    return env


@pytest.fixture
def settings(redis_url: str, database_url: str, namespace: str) -> CommonSettings:
    return CommonSettings(
        redis_url=redis_url,
        database_url=database_url,
        namespace=namespace,
        control_secret=Secret(SECRET),
    )


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out!r}, err={self.err!r})"


async def run_cli(env: dict[str, str], *args: str, timeout: float = 60) -> CliResult:
    """`livermore ARGS` as a real process (python -m services.cli), to completion."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(), err.decode())


class Responder:
    """A tiny stand-in for one ingestor instance (or a symbol manager): verifies each command's
    signature with its secret and answers `ack`, then a final answer, like the real services."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: KeySpace,
        instance_id: str,
        *,
        exchange_id: int = 1,
        exchange: str = "coinbase",
        secret: str = SECRET,
        verbs: frozenset[str] = INGESTOR_VERBS,
        ack_only: bool = False,
        answer_after: asyncio.Event | None = None,
    ) -> None:
        self._redis, self._keys = redis, keys
        self.instance_id = instance_id
        self.exchange_id, self.exchange = exchange_id, exchange
        self._secret = secret
        self._verbs = verbs
        self._ack_only = ack_only
        self._answer_after = answer_after
        self.received: list[ControlCommand] = []
        self.answered = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def register(self, *, alive: bool = True) -> None:
        """Join the instance set; with `alive`, hold a fresh health key like the runner does."""
        instances = self._keys.exchange_instances_key(self.exchange_id)
        await self._redis.sadd(instances, self.instance_id)
        if alive:
            health = self._keys.health_key(f"ingestor-{self.exchange}", self.instance_id)
            await self._redis.hset(health, mapping={"status": "running"})
            await self._redis.pexpire(health, 60_000)

    async def start(self) -> Responder:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._keys.control_channel)
        await pubsub.get_message(timeout=2.0)
        self._task = asyncio.create_task(self._run(pubsub))
        return self

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, pubsub: Any) -> None:
        try:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
                if message is not None:
                    await self._handle(messages.decode(message["data"], ControlCommand))
        finally:
            await pubsub.aclose()

    async def _handle(self, command: ControlCommand) -> None:
        targets = (self.exchange, str(self.exchange_id), "*", "all")
        if command.exchange.lower() not in targets or command.command not in self._verbs:
            return
        try:
            control.verify(command, self._secret, now_ms=int(time.time() * 1000))
        except AuthenticationError as exc:
            await self._respond(command, "error", message=str(exc))
            return
        self.received.append(command)
        await self._respond(command, "ack")
        if self._ack_only:
            return
        if self._answer_after is not None:
            await self._answer_after.wait()
        await self._respond(command, "success", data=self._data(command))
        self.answered.set()

    def _data(self, command: ControlCommand) -> dict[str, Any]:
        now = int(time.time() * 1000)
        if command.command != "getStatus":
            return {"result": f"{command.command} done", "params": command.params}
        return {
            "connection_state": "connected",
            "connected_at": now - 5000,
            "last_heartbeat": now,
            "last_error": None,
            "symbols": ["BTC-USD", "ETH-USD"],
            "timeframes": ["1m", "5m"],
            "members": [self.instance_id],
            "counters": {"closed": 7, "announced": 9, "dropped": 0, "gaps": 0, "backfilled": 2},
        }

    async def _respond(
        self,
        command: ControlCommand,
        status: str,
        *,
        message: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        response = ControlResponse(
            command_id=command.id,
            status=status,
            exchange=command.exchange,
            instance_id=self.instance_id,
            timestamp=int(time.time() * 1000),
            message=message,
            data=data,
        )
        await self._redis.publish(self._keys.control_responses_channel, messages.encode(response))


@pytest.fixture
async def make_responder(
    redis_client: aioredis.Redis, keyspace: KeySpace
) -> AsyncIterator[Callable[..., Awaitable[Responder]]]:
    """Start a listening responder, registered as a live instance unless told otherwise."""
    started: list[Responder] = []

    async def make(
        instance_id: str, *, register: bool = True, alive: bool = True, **options: Any
    ) -> Responder:
        responder = Responder(redis_client, keyspace, instance_id, **options)
        if register:
            await responder.register(alive=alive)
        started.append(await responder.start())
        return responder

    yield make
    for responder in started:
        await responder.aclose()
