"""Test support for the gateway: run it in-process on a free port, and a tiny fake ingestor.

The fake answers `start`/`stop`/`getStatus` the way an ingestor does (ack, then a final status;
lifecycle events and status hashes on the way) after checking each command with `control.verify`,
so a test proves the gateway's commands are signed. It is a stand-in until the real ingestor and
simulator run in these tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec
import redis.asyncio as aioredis
from aiohttp import web

from livermore_common import control, messages
from livermore_common.config import CommonSettings, Secret
from livermore_common.errors import AuthenticationError
from livermore_common.keys import KeySpace
from livermore_common.messages import ControlCommand, ControlResponse, LifecycleEvent
from services.gateway.app import create_app
from services.gateway.config import GatewaySettings

TOKEN = "gateway-test-token-0123456789abcdef"
CONTROL_SECRET = "control-test-secret-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def now_ms() -> int:
    return int(time.time() * 1000)


def gateway_settings(
    *,
    redis_url: str,
    database_url: str,
    namespace: str,
    control_secret: str = CONTROL_SECRET,
    command_timeout: float = 3.0,
) -> GatewaySettings:
    common = CommonSettings(
        redis_url=redis_url,
        database_url=database_url,
        namespace=namespace,
        control_secret=Secret(control_secret),
    )
    return GatewaySettings(
        common=common, token=Secret(TOKEN), port=free_port(), command_timeout=command_timeout
    )


@contextlib.asynccontextmanager
async def running_gateway(
    settings: GatewaySettings, redis: aioredis.Redis | None = None
) -> AsyncIterator[str]:
    """Serve the gateway on 127.0.0.1:<settings.port>; yields its base URL."""
    runner = web.AppRunner(create_app(settings, redis=redis), shutdown_timeout=2.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", settings.port).start()
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        await runner.cleanup()


def auth_headers(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class FakeIngestor:
    """Answers control commands for one exchange like an ingestor instance, verifying each."""

    redis: aioredis.Redis
    keys: KeySpace
    secret: str = CONTROL_SECRET
    exchange_id: int = 1
    exchange: str = "coinbase"
    instance_id: str = "fake-1"
    verified: list[ControlCommand] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    state: str = "idle"
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> FakeIngestor:
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(self.keys.control_channel)
        # Wait for the subscription to be confirmed so no command published afterwards is missed.
        while (await pubsub.get_message(timeout=1.0) or {}).get("type") != "subscribe":
            pass
        await self._set_state("idle")
        # The lifecycle runner's health key: the gateway waits for answers of live instances.
        await self.redis.hset(self._health_key, mapping={"status": "running"})
        await self.redis.pexpire(self._health_key, 120_000)
        self._task = asyncio.create_task(self._loop(pubsub))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.redis.delete(self._health_key)

    @property
    def _health_key(self) -> str:
        return self.keys.health_key(f"ingestor-{self.exchange}", self.instance_id)

    async def _loop(self, pubsub: Any) -> None:
        try:
            while True:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is not None:
                    await self._handle(msg["data"])
        finally:
            await pubsub.aclose()

    def _targets_me(self, exchange: str) -> bool:
        return exchange.lower() in (self.exchange, str(self.exchange_id))

    async def _handle(self, data: bytes) -> None:
        command = messages.decode(data, ControlCommand)
        if not self._targets_me(command.exchange):
            return
        try:
            control.verify(command, self.secret, now_ms=now_ms())
        except AuthenticationError as exc:
            self.refused.append(command.id)
            await self._respond(command, "error", message=str(exc))
            return
        self.verified.append(command)
        await self._respond(command, "ack")
        if command.command == "start":
            final = "already_started" if self.state == "connected" else "success"
            await self._set_state("connecting")
            await self._set_state("connected")
        elif command.command == "stop":
            final = "already_idle" if self.state == "idle" else "success"
            await self._set_state("idle")
        else:
            final = "success"
        await self._respond(command, final, data={"connection_state": self.state})

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
            exchange=self.exchange,
            instance_id=self.instance_id,
            timestamp=now_ms(),
            message=message,
            data=data,
        )
        await self.redis.publish(self.keys.control_responses_channel, messages.encode(response))

    async def _set_state(self, state: str) -> None:
        self.state = state
        now = now_ms()
        fields = {
            "exchange_id": str(self.exchange_id),
            "exchange": self.exchange,
            "instance_id": self.instance_id,
            "connection_state": state,
            "connected_at": str(now) if state == "connected" else "",
            "last_heartbeat": str(now),
            "last_error": "",
            "updated_at": str(now),
            "host": "test",
        }
        event = LifecycleEvent(
            event=f"exchange:{state}",
            exchange_id=self.exchange_id,
            exchange=self.exchange,
            instance_id=self.instance_id,
            timestamp=now,
        )
        payload = messages.encode(event)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.instance_status_key(self.exchange_id, self.instance_id), mapping=fields)
        pipe.hset(self.keys.exchange_status_key(self.exchange_id), mapping=fields)
        pipe.sadd(self.keys.exchange_instances_key(self.exchange_id), self.instance_id)
        pipe.publish(self.keys.control_responses_channel, payload)
        pipe.xadd(self.keys.lifecycle_stream, {"data": payload})
        await pipe.execute()


def sample_alert(alert_id: str = "alert-1", exchange_id: int = 1, name: str = "coinbase") -> bytes:
    return messages.encode(
        messages.Alert(
            id=alert_id,
            source_exchange_id=exchange_id,
            source_exchange_name=name,
            symbol="BTC-USD" if exchange_id == 1 else "BTCUSDT",
            timeframe="5m",
            alert_type="macdv",
            trigger_label="level_-150",
            trigger_value=-161.5,
            signal=-140.0,
            histogram=-21.5,
            stage="oversold",
            price=42000.5,
            candle_timestamp=1_704_067_200_000,
            triggered_at=now_ms(),
        )
    )


class SseReader:
    """Reads `event:`/`data:` messages from an open text/event-stream response."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def next_event(self, timeout: float = 5.0) -> tuple[str, Any]:
        event, data = "message", ""
        async with asyncio.timeout(timeout):
            while True:
                raw = await self._response.content.readline()
                if not raw:
                    raise EOFError("the event stream ended")
                line = raw.decode().rstrip("\n")
                if line == "" and data:
                    return event, json.loads(data)
                if line.startswith("event: "):
                    event = line[len("event: ") :]
                elif line.startswith("data: "):
                    data += line[len("data: ") :]

    async def wait_for(self, kind: str, timeout: float = 5.0) -> Any:
        """The next event named `kind` (others in between are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                event, payload = await self.next_event(timeout)
                if event == kind:
                    return payload


def decode_json(body: bytes) -> Any:
    return msgspec.json.decode(body)
