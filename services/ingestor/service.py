"""The ingestor process: idle until `start`, then one feed session at a time, reconnecting.

State machine: idle → connecting → connected → (disconnected → connecting …) → idle on `stop`.
Control commands arrive on `channel:control`, are authenticated, and are answered on
`channel:control:responses` with `ack` and then a final status.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from livermore_common import control, messages
from livermore_common.cache import CandleCache
from livermore_common.errors import AuthenticationError, LivermoreError, TransientError
from livermore_common.exchanges.base import ExchangeAdapter, ExchangeInfo
from livermore_common.keys import KeySpace
from livermore_common.logs import get_logger
from livermore_common.messages import ControlCommand, ControlResponse, SymbolEntry

from .assignment import assign
from .config import IngestorSettings
from .membership import Membership
from .session import Counters, FeedSession
from .status import CONNECTING, DISCONNECTED, IDLE, StatusTracker
from .symbols import resolve_symbols

AdapterFactory = Callable[[], Awaitable[ExchangeAdapter]]
_HANDLED = frozenset({"start", "stop", "getStatus", "force-backfill"})


def _now_ms() -> int:
    return int(time.time() * 1000)


class Ingestor:
    def __init__(
        self,
        *,
        settings: IngestorSettings,
        redis: aioredis.Redis,
        keys: KeySpace,
        info: ExchangeInfo,
        adapter_factory: AdapterFactory,
        instance_id: str,
    ) -> None:
        self.settings = settings
        self._redis = redis
        self._keys = keys
        self.info = info
        self._adapter_factory = adapter_factory
        self.instance_id = instance_id
        self.status = StatusTracker(
            redis,
            keys,
            exchange_id=info.id,
            exchange=info.name,
            instance_id=instance_id,
            host=socket.gethostname(),
        )
        self.cache = CandleCache(
            redis,
            keys,
            max_candles=settings.max_candles,
            user_ttl_seconds=settings.user_ttl_seconds,
        )
        self.membership = Membership(redis, keys, info.id, instance_id)
        self.counters = Counters()
        self._session_task: asyncio.Task[None] | None = None
        self._session: FeedSession | None = None
        self._all_entries: tuple[SymbolEntry, ...] = ()
        self._members: list[str] = [instance_id]
        self._log = get_logger("ingestor", exchange=info.name, instance=instance_id)

    @property
    def running(self) -> bool:
        return self._session_task is not None and not self._session_task.done()

    # -- process lifetime ----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        # Listen first, then say `idle`: a command sent as soon as the status reads idle (as an
        # operator or a test does) must find the subscription in place, since pub/sub keeps
        # nothing for a subscriber that is not there yet.
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self._keys.control_channel)
            await self.status.set_state(IDLE)
        except BaseException:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise
        self._log.info("ingestor idle; waiting for start", autostart=self.settings.autostart)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._control_loop(stop, pubsub))
                tg.create_task(self._membership_loop(stop))
                if self.settings.autostart:
                    await self.start()
                await stop.wait()
                await self.stop()
                raise _Stopped
        except* _Stopped:
            pass
        finally:
            with contextlib.suppress(Exception):
                await self.membership.leave()
                await self.status.forget()

    async def start(self) -> str:
        if self.running:
            return "already_started"
        self._session_task = asyncio.create_task(self._session_loop(), name="ingestor-session")
        return "started"

    async def stop(self) -> str:
        task, self._session_task = self._session_task, None
        if task is None or task.done():
            return "already_idle"
        await _cancel_and_wait(task)
        await self.membership.leave()
        await self.status.set_state(IDLE)
        return "stopped"

    # -- the connection loop -------------------------------------------------------------------
    async def _session_loop(self) -> None:
        attempt = 0
        while True:
            await self.status.set_state(CONNECTING)
            adapter: ExchangeAdapter | None = None
            try:
                adapter = await self._adapter_factory()
                await self._run_session(adapter)
            except (TransientError, OSError, TimeoutError) as exc:
                if self.status.connected_at is not None:
                    attempt = 0  # it was connected: start the backoff over
                await self.status.set_state(DISCONNECTED, error=_describe(exc))
            except LivermoreError as exc:
                await self.status.set_state(DISCONNECTED, error=_describe(exc))
                attempt = max(attempt, 4)  # a permanent-looking error: back off harder
            finally:
                self._session = None
                if adapter is not None:
                    await adapter.aclose()
            delay = min(30.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.0)
            attempt += 1
            self._log.info("reconnecting", in_s=round(delay, 2), attempt=attempt)
            await asyncio.sleep(delay)

    async def _run_session(self, adapter: ExchangeAdapter) -> None:
        entries, source = await resolve_symbols(
            redis=self._redis,
            keys=self._keys,
            adapter=adapter,
            exchange_id=self.info.id,
            explicit=self.settings.symbols,
            default_count=self.settings.default_symbol_count,
        )
        self._all_entries = entries
        self._members = await self.membership.heartbeat()
        owned = self._owned()
        self._log.info("symbols resolved", source=source, total=len(entries), owned=len(owned))
        session = FeedSession(
            adapter=adapter,
            cache=self.cache,
            settings=self.settings,
            status=self.status,
            entries=owned,
            counters=self.counters,
        )
        self._session = session
        await session.run()

    def _owned(self) -> list[SymbolEntry]:
        mine = set(assign([e.symbol for e in self._all_entries], self._members, self.instance_id))
        return [e for e in self._all_entries if e.symbol in mine]

    async def _membership_loop(self, stop: asyncio.Event) -> None:
        """Renew the lease; on membership or symbol-list change, rebalance the live session."""
        while not stop.is_set():
            if self.running:
                members = await self.membership.heartbeat()
                entries = await self._current_entries()
                if members != self._members or entries != self._all_entries:
                    self._members, self._all_entries = members, entries
                    if self._session is not None:
                        self._log.info("rebalancing", members=len(members))
                        await self._session.update_entries(self._owned())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.membership.lease_ms / 3000):
                    await stop.wait()

    async def _current_entries(self) -> tuple[SymbolEntry, ...]:
        if self.settings.symbols:
            return self._all_entries
        raw = await self._redis.get(self._keys.symbol_list_key(self.info.id))
        if not raw:
            return self._all_entries
        try:
            return messages.decode(raw, messages.SymbolList).symbols
        except msgspec.MsgspecError:
            return self._all_entries

    # -- control -------------------------------------------------------------------------------
    async def _control_loop(self, stop: asyncio.Event, pubsub: PubSub) -> None:
        """Answer commands from the subscribed `pubsub` until `stop`; closes it."""
        try:
            while not stop.is_set():
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                if message is not None:
                    await self._on_control(message["data"])
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _targets_me(self, exchange: str) -> bool:
        return exchange.lower() in (self.info.name, str(self.info.id), "*", "all")

    async def _on_control(self, data: bytes) -> None:
        try:
            command = messages.decode(data, ControlCommand)
        except msgspec.MsgspecError as exc:
            await self._respond("", "error", exchange="", message=f"malformed command: {exc}")
            return
        if not self._targets_me(command.exchange) or command.command not in _HANDLED:
            return  # another service's command (e.g. the symbol manager's refresh-symbols)
        try:
            control.verify(command, self.settings.common.control_secret.reveal(), now_ms=_now_ms())
        except AuthenticationError as exc:
            await self._respond(command.id, "error", exchange=command.exchange, message=str(exc))
            return
        if not await control.claim_command_id(
            self._redis, self._keys, f"{command.id}.{self.instance_id}"
        ):
            return  # a replay of a command this instance already handled
        await self._respond(command.id, "ack", exchange=command.exchange)
        status, message, data_out = await self._execute(command)
        await self._respond(
            command.id, status, exchange=command.exchange, message=message, data=data_out
        )

    async def _execute(
        self, command: ControlCommand
    ) -> tuple[str, str | None, dict[str, Any] | None]:
        verb = command.command
        if verb == "start":
            result = await self.start()
            return (
                ("already_started" if result == "already_started" else "success"),
                None,
                {"result": result, **self.status.snapshot()},
            )
        if verb == "stop":
            result = await self.stop()
            return (
                ("already_idle" if result == "already_idle" else "success"),
                None,
                {"result": result, **self.status.snapshot()},
            )
        if verb == "getStatus":
            return "success", None, self.describe()
        if verb == "force-backfill":
            if self._session is None:
                return "error", "not connected: start the exchange first", None
            symbols = command.params.get("symbols") or self._session.symbols
            self._session.request_backfill([str(s) for s in symbols])
            return "success", None, {"symbols": len(symbols)}
        raise AssertionError(f"unhandled verb {verb}")  # _HANDLED lists exactly the verbs above

    def describe(self) -> dict[str, Any]:
        return {
            **self.status.snapshot(),
            "symbols": self._session.symbols if self._session else [],
            "members": self._members,
            "timeframes": list(self.settings.timeframes),
            "counters": self.counters.as_dict(),
        }

    async def _respond(
        self,
        command_id: str,
        status: str,
        *,
        exchange: str,
        message: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        response = ControlResponse(
            command_id=command_id,
            status=status,
            exchange=exchange or self.info.name,
            instance_id=self.instance_id,
            timestamp=_now_ms(),
            message=message,
            data=data,
        )
        await self._redis.publish(self._keys.control_responses_channel, messages.encode(response))


async def _cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait for it to end, cancelling again while it runs on: a library may
    swallow one cancellation (redis-py under asyncio.wait_for on Python 3.11)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
    if not task.cancelled() and task.exception() is not None:
        get_logger("ingestor").warning("session ended with an error", error=str(task.exception()))


class _Stopped(Exception):
    """Internal: leaves the task group when the process is asked to stop."""


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:300]
