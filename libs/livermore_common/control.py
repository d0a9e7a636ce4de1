"""Authenticated control commands (DOMAIN.md §8): signing, verification, replay guard, a client.

A command is signed with HMAC-SHA256 (lowercase hex) under the shared secret
`LIVERMORE_CONTROL_SECRET`, over this canonical text, UTF-8 encoded, so any language can sign:

    {id}\\n{command}\\n{exchange}\\n{issued_at}\\n{params}

where `issued_at` is decimal epoch ms and `params` is the JSON of the params object with keys
sorted (recursively), no whitespace (separators "," and ":"), non-ASCII characters unescaped;
`{}` when there are none. Python: json.dumps(params, sort_keys=True, separators=(",", ":"),
ensure_ascii=False).

Receivers refuse (with an `error` response) commands that are malformed, unsigned, wrongly signed,
older than 30 s or more than 5 s in the future. A signed command replayed on the channel is
handled once per receiving instance: each claims `{command id}.{instance id}` with SET NX (TTL
longer than the accepted age), so every instance of a broadcast handles it once and a replay
within its validity window finds the claim taken.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from types import TracebackType
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from livermore_common import messages
from livermore_common.config import Secret
from livermore_common.errors import AuthenticationError
from livermore_common.keys import KeySpace
from livermore_common.messages import ControlCommand, ControlResponse, LifecycleEvent
from livermore_common.redisbus import raise_if_cancelled

MAX_AGE_MS = 30_000
MAX_FUTURE_MS = 5_000
CLAIM_TTL_S = 60  # > MAX_AGE_MS + MAX_FUTURE_MS: a claim outlives every acceptable replay
LIFECYCLE_STREAM_MAXLEN = 10_000
FINAL_STATUSES = frozenset({"success", "error", "already_started", "already_idle"})
DISABLED = "control commands are disabled: LIVERMORE_CONTROL_SECRET is not set"

_ID = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


def _reveal(secret: str | Secret) -> str:
    return secret.reveal() if isinstance(secret, Secret) else secret


def canonical(command: ControlCommand) -> bytes:
    """The exact bytes that are signed (see the module docstring)."""
    params = json.dumps(command.params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    text = f"{command.id}\n{command.command}\n{command.exchange}\n{command.issued_at}\n{params}"
    return text.encode()


def _digest(command: ControlCommand, secret: str) -> str:
    return hmac.new(secret.encode(), canonical(command), hashlib.sha256).hexdigest()


def sign(command: ControlCommand, secret: str | Secret) -> ControlCommand:
    """The command with its `signature` set."""
    key = _reveal(secret)
    if not key:
        raise AuthenticationError(DISABLED)
    return msgspec.structs.replace(command, signature=_digest(command, key))


def new_command(
    command: str,
    exchange: str,
    params: Mapping[str, Any] | None = None,
    *,
    now_ms: int | None = None,
) -> ControlCommand:
    """An unsigned command with a fresh id, issued now (or at `now_ms`)."""
    issued = int(time.time() * 1000) if now_ms is None else now_ms
    return ControlCommand(
        id=uuid.uuid4().hex,
        command=command,
        exchange=exchange,
        issued_at=issued,
        params=dict(params or {}),
    )


def decode_command(data: bytes | str) -> ControlCommand:
    """Parse a message from `channel:control`; AuthenticationError when it is not a command."""
    try:
        return messages.decode(data, ControlCommand)
    except msgspec.DecodeError as exc:
        raise AuthenticationError(f"malformed command: {exc}") from None


def verify(
    command: ControlCommand,
    secret: str | Secret,
    *,
    now_ms: int,
    max_age_ms: int = MAX_AGE_MS,
) -> None:
    """Raise AuthenticationError with the reason unless the command is well formed, correctly
    signed, at most `max_age_ms` old and at most 5 s in the future. The signature comparison is
    constant-time; the reason never contains the secret or the expected signature."""
    key = _reveal(secret)
    if not key:
        raise AuthenticationError(DISABLED)
    if not _ID.fullmatch(command.id) or not command.command or not command.exchange:
        raise AuthenticationError(
            "malformed command: id (1-128 of A-Z a-z 0-9 _ . -), command and exchange required"
        )
    if command.issued_at <= 0:
        raise AuthenticationError("malformed command: issued_at must be epoch milliseconds")
    if not command.signature:
        raise AuthenticationError("unsigned command refused")
    signature = command.signature.lower()
    valid = hmac.compare_digest(signature, _digest(command, key))
    if not _SIGNATURE.fullmatch(signature) or not valid:
        raise AuthenticationError("bad signature: command refused")
    age = now_ms - command.issued_at
    if age > max_age_ms:
        raise AuthenticationError(
            f"stale command refused: issued {age / 1000:.1f}s ago (limit {max_age_ms / 1000:g}s)"
        )
    if age < -MAX_FUTURE_MS:
        raise AuthenticationError(
            f"command from the future refused: issued {-age / 1000:.1f}s ahead (check clocks)"
        )


async def claim_command_id(
    redis: aioredis.Redis,
    keys: KeySpace,
    command_id: str,
    ttl_s: int = CLAIM_TTL_S,
    *,
    claimant: str | None = None,
) -> bool:
    """True the first time this receiver sees the command: SET NX on the nonce key.

    Pass the receiving instance as `claimant` (or a `{command id}.{instance id}` string as
    `command_id`) so that every instance of a broadcast handles it once; a replay finds the
    claim taken. Keep `ttl_s` above the accepted age plus future skew (35 s).
    """
    claim = command_id if claimant is None else f"{command_id}.{claimant}"
    return bool(await redis.set(keys.control_nonce_key(claim), "1", nx=True, ex=ttl_s))


async def respond(redis: aioredis.Redis, keys: KeySpace, response: ControlResponse) -> None:
    """Publish a response on `channel:control:responses`."""
    await redis.publish(keys.control_responses_channel, messages.encode(response))


async def publish_event(redis: aioredis.Redis, keys: KeySpace, event: LifecycleEvent) -> None:
    """Publish a lifecycle event on the responses channel and keep it on the lifecycle stream."""
    payload = messages.encode(event)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.publish(keys.control_responses_channel, payload)
        pipe.xadd(keys.lifecycle_stream, {"data": payload}, maxlen=LIFECYCLE_STREAM_MAXLEN)
        await pipe.execute()


async def _subscribed(redis: aioredis.Redis, channel: str) -> PubSub:
    """A pub/sub connection whose subscription the server has confirmed: nothing after this
    point can be missed."""
    pubsub = redis.pubsub()
    await pubsub.subscribe(channel)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while loop.time() < deadline:
        message = await pubsub.get_message(timeout=max(deadline - loop.time(), 0.01))
        if message is not None and message["type"] == "subscribe":
            return pubsub
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    raise TimeoutError(f"no subscription confirmation for {channel}")


def _decoded(message: Any) -> ControlResponse | LifecycleEvent | None:
    if message is None or message.get("type") != "message":
        return None
    try:
        return messages.decode_response(message["data"])
    except msgspec.DecodeError:
        return None  # someone else's traffic on the channel


class ControlClient:
    """Sends signed commands on `channel:control` and collects the responses to them.

    Each call subscribes to `channel:control:responses` on its own connection before publishing,
    so concurrent calls do not interfere and the client needs no background task; using it as
    an async context manager is optional.
    """

    def __init__(self, redis: aioredis.Redis, keys: KeySpace, secret: str | Secret) -> None:
        self._redis = redis
        self._keys = keys
        self._secret = _reveal(secret)

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
        """Nothing is held between calls; the Redis client belongs to the caller."""

    async def send(
        self,
        command: str,
        exchange: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float = 5.0,
        expect: int = 1,
        expect_final: bool = True,
    ) -> list[ControlResponse]:
        """Publish a signed command; return its responses in arrival order once `expect` final
        answers (success, error, already_started, already_idle) arrived, or when `timeout`
        passed (then possibly fewer, or none). With `expect_final=False`, collect everything
        until the timeout (e.g. to hear every instance). Nobody subscribed: [] at once."""
        stream = self.stream(
            command, exchange, params, timeout=timeout, expect=expect, expect_final=expect_final
        )
        return [response async for response in stream]

    async def stream(
        self,
        command: str,
        exchange: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float = 5.0,
        expect: int = 1,
        expect_final: bool = True,
    ) -> AsyncGenerator[ControlResponse, None]:
        """Like `send`, but yield each response as it arrives. Wrap it in
        `contextlib.aclosing` when the caller may stop iterating early."""
        signed = sign(new_command(command, exchange, params), self._secret)
        pubsub = await _subscribed(self._redis, self._keys.control_responses_channel)
        loop = asyncio.get_running_loop()
        # A deadline rather than asyncio.timeout: a timeout scope must not span the yields.
        deadline = loop.time() + timeout
        finals = 0
        try:
            receivers = await self._redis.publish(
                self._keys.control_channel, messages.encode(signed)
            )
            while receivers and (remaining := deadline - loop.time()) > 0:
                raise_if_cancelled()
                message = await pubsub.get_message(timeout=min(remaining, 0.2))
                response = _decoded(message)
                if isinstance(response, ControlResponse) and response.command_id == signed.id:
                    yield response
                    finals += response.status in FINAL_STATUSES
                    if expect_final and finals >= expect:
                        return
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def events(self) -> AsyncIterator[LifecycleEvent]:
        """Lifecycle events as they are published, until the caller stops iterating."""
        pubsub = await _subscribed(self._redis, self._keys.control_responses_channel)
        try:
            while True:
                raise_if_cancelled()
                decoded = _decoded(await pubsub.get_message(timeout=1.0))
                if isinstance(decoded, LifecycleEvent):
                    yield decoded
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
