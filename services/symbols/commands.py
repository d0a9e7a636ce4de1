"""`refresh-symbols` on `channel:control`: authenticated, claimed by one manager, answered with
`ack` then `success` (per-exchange counts) or `error` on `channel:control:responses`."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from livermore_common import control, messages
from livermore_common.db import ExchangeRow
from livermore_common.errors import AuthenticationError
from livermore_common.messages import ControlCommand, ControlResponse

from .service import REFRESH_ERRORS, RefreshResult, SymbolManager, describe_error, now_ms

REFRESH_VERB = "refresh-symbols"


class RefreshCommands:
    """Listens for `refresh-symbols` and runs the refresh it asks for."""

    def __init__(self, manager: SymbolManager, secret: str) -> None:
        self._manager = manager
        self._secret = secret
        self._redis = manager.redis
        self._keys = manager.keys

    async def run(self, stop: asyncio.Event) -> None:
        """Answer commands until `stop`; refreshes in flight finish before this returns."""
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._keys.control_channel)
        try:
            async with asyncio.TaskGroup() as tg:
                while not stop.is_set():
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                    if message is not None:
                        # Its own task: a slow refresh must not hold up the next command.
                        tg.create_task(self.handle(message["data"]))
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def handle(self, data: bytes) -> None:
        try:
            command = messages.decode(data, ControlCommand)
        except msgspec.MsgspecError:
            return  # not ours to answer: ingestors report malformed commands
        if command.command != REFRESH_VERB:
            return
        targets = await self._targets(command.exchange)
        if not targets:
            return  # another manager serves that exchange
        try:
            control.verify(command, self._secret, now_ms=now_ms())
        except AuthenticationError as exc:
            await self._respond(command, "error", message=str(exc))
            return
        # One manager replica answers a command, however many listen.
        if not await control.claim_command_id(self._redis, self._keys, f"{command.id}.symbols"):
            return
        await self._respond(command, "ack")
        try:
            results = [await self._manager.refresh(exchange) for exchange in targets]
        except REFRESH_ERRORS as exc:  # reported to the sender, who asked for this refresh
            await self._respond(command, "error", message=describe_error(exc))
            return
        await self._respond(command, "success", data={"exchanges": [summary(r) for r in results]})

    async def _targets(self, exchange: str) -> list[ExchangeRow]:
        served = await self._manager.exchanges()
        wanted = exchange.strip().lower()
        if wanted in ("*", "all"):
            return served
        return [row for row in served if wanted in (row.name.lower(), str(row.id))]

    async def _respond(
        self,
        command: ControlCommand,
        status: str,
        *,
        message: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        response = ControlResponse(
            command_id=command.id, status=status, exchange=command.exchange,
            instance_id=self._manager.instance_id, timestamp=now_ms(), message=message, data=data,
        )  # fmt: skip
        await self._redis.publish(self._keys.control_responses_channel, messages.encode(response))


def summary(result: RefreshResult) -> dict[str, Any]:
    """What a `success` answer reports per exchange (counts only)."""
    return {
        "exchange_id": result.exchange_id,
        "exchange": result.exchange,
        "tier1": result.tier1,
        "tier2": result.tier2,
        "deactivated": result.deactivated,
        "changed": result.changed,
        "accounts_ok": sum(1 for a in result.accounts if a.ok),
        "accounts_failed": sum(1 for a in result.accounts if not a.ok),
    }
