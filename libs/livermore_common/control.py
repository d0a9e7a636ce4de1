"""Authenticated control commands (DOMAIN.md §8): signing, verification, replay guard, a client.

A command is signed with HMAC-SHA256 (hex) under the shared secret `LIVERMORE_CONTROL_SECRET`,
over this canonical text (UTF-8), so any language can produce it:

    {id}\\n{command}\\n{exchange}\\n{issued_at}\\n{params as JSON, keys sorted, no spaces}

Receivers refuse commands that are unsigned, wrongly signed, older than 30 s or more than 5 s in
the future, and (with `claim_command_id`) ones they have already handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from types import TracebackType
from typing import Any

import msgspec
import redis.asyncio as aioredis

from livermore_common import messages
from livermore_common.errors import AuthenticationError
from livermore_common.keys import KeySpace
from livermore_common.messages import ControlCommand, ControlResponse, LifecycleEvent

MAX_AGE_MS = 30_000
MAX_FUTURE_MS = 5_000
FINAL_STATUSES = frozenset({"success", "error", "already_started", "already_idle"})
DISABLED = "control commands are disabled: LIVERMORE_CONTROL_SECRET is not set"


def canonical(command: ControlCommand) -> bytes:
    params = json.dumps(command.params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    text = f"{command.id}\n{command.command}\n{command.exchange}\n{command.issued_at}\n{params}"
    return text.encode()


def _digest(command: ControlCommand, secret: str) -> str:
    return hmac.new(secret.encode(), canonical(command), hashlib.sha256).hexdigest()


def sign(command: ControlCommand, secret: str) -> ControlCommand:
    """The command with its `signature` set."""
    if not secret:
        raise AuthenticationError(DISABLED)
    return msgspec.structs.replace(command, signature=_digest(command, secret))


def new_command(
    command: str,
    exchange: str,
    params: Mapping[str, Any] | None = None,
    *,
    now_ms: int | None = None,
) -> ControlCommand:
    issued = int(time.time() * 1000) if now_ms is None else now_ms
    return ControlCommand(
        id=uuid.uuid4().hex,
        command=command,
        exchange=exchange,
        issued_at=issued,
        params=dict(params or {}),
    )


def verify(
    command: ControlCommand, secret: str, *, now_ms: int, max_age_ms: int = MAX_AGE_MS
) -> None:
    """Raise AuthenticationError with the reason unless the command is signed, fresh and sane."""
    if not secret:
        raise AuthenticationError(DISABLED)
    if not command.id or not command.command or not command.exchange:
        raise AuthenticationError("malformed command: id, command and exchange are required")
    if not command.signature:
        raise AuthenticationError("unsigned command refused")
    if not hmac.compare_digest(command.signature.lower(), _digest(command, secret)):
        raise AuthenticationError("bad signature: command refused")
    age = now_ms - command.issued_at
    if age > max_age_ms:
        raise AuthenticationError(f"stale command refused ({age / 1000:.1f}s old, limit 30s)")
    if age < -MAX_FUTURE_MS:
        raise AuthenticationError("command issued in the future refused (check clocks)")


async def claim_command_id(
    redis: aioredis.Redis, keys: KeySpace, claim: str, ttl_s: int = 120
) -> bool:
    """True the first time `claim` is seen. Receivers claim `{command id}.{instance id}`, so every
    instance handles a broadcast command once, and a replayed message is ignored."""
    return bool(await redis.set(keys.control_nonce_key(claim), "1", nx=True, ex=ttl_s))


class ControlClient:
    """Sends signed commands on `channel:control` and collects the responses for them."""

    def __init__(self, redis: aioredis.Redis, keys: KeySpace, secret: str) -> None:
        self._redis = redis
        self._keys = keys
        self._secret = secret

    async def __aenter__(self) -> ControlClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        return None

    async def send(
        self,
        command: str,
        exchange: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float = 5.0,
        expect: int = 1,
    ) -> list[ControlResponse]:
        """Publish a signed command; return its responses once `expect` final answers arrived
        (one per instance that handles it) or `timeout` passed."""
        signed = sign(new_command(command, exchange, params), self._secret)
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._keys.control_responses_channel)
        # Wait for the subscription to be confirmed, so no fast reply can be missed.
        await pubsub.get_message(timeout=2.0)
        responses: list[ControlResponse] = []
        try:
            await self._redis.publish(self._keys.control_channel, messages.encode(signed))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._collect(pubsub, signed.id, responses, expect)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
        return responses

    async def stream(
        self,
        command: str,
        exchange: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float = 5.0,
        expect: int = 1,
    ) -> AsyncGenerator[ControlResponse, None]:
        """Like `send`, but yield each response to the command as it arrives (`ack`, then one
        final answer per instance) until `expect` final answers arrived or `timeout` passed.
        Wrap it in `contextlib.aclosing` when the caller may stop iterating early."""
        signed = sign(new_command(command, exchange, params), self._secret)
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._keys.control_responses_channel)
        await pubsub.get_message(timeout=2.0)  # the confirmation: no fast reply can be missed
        loop = asyncio.get_running_loop()
        # A deadline rather than asyncio.timeout: a timeout scope must not span the yields.
        deadline = loop.time() + timeout
        finals = 0
        try:
            await self._redis.publish(self._keys.control_channel, messages.encode(signed))
            while finals < expect and (remaining := deadline - loop.time()) > 0:
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=min(remaining, 0.2)
                )
                response = _response_to(message, signed.id)
                if response is not None:
                    finals += response.status in FINAL_STATUSES
                    yield response
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _collect(
        self, pubsub: Any, command_id: str, out: list[ControlResponse], expect: int
    ) -> None:
        finals = 0
        while finals < expect:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if message is None:
                continue
            try:
                decoded = messages.decode_response(message["data"])
            except msgspec.MsgspecError:
                continue
            if isinstance(decoded, ControlResponse) and decoded.command_id == command_id:
                out.append(decoded)
                finals += decoded.status in FINAL_STATUSES

    async def events(self) -> AsyncIterator[LifecycleEvent]:
        """Lifecycle events as they are published (until the caller stops iterating)."""
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._keys.control_responses_channel)
        try:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is None:
                    continue
                with contextlib.suppress(msgspec.MsgspecError):
                    decoded = messages.decode_response(message["data"])
                    if isinstance(decoded, LifecycleEvent):
                        yield decoded
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]


def _response_to(message: Any, command_id: str) -> ControlResponse | None:
    """The response in a pub/sub message if it answers `command_id`."""
    if message is None:
        return None
    try:
        decoded = messages.decode_response(message["data"])
    except msgspec.MsgspecError:
        return None
    if isinstance(decoded, ControlResponse) and decoded.command_id == command_id:
        return decoded
    return None
