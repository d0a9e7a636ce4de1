"""What `livermore tail` does with each message: filter, de-duplicate, print (text or JSON)."""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

import msgspec
import redis.asyncio as aioredis

from livermore_common import messages
from livermore_common.messages import Alert, ControlResponse, LifecycleEvent

from . import render
from .exchanges import ExchangeRef

STREAM_ID = re.compile(r"^\d+(-\d+)?$")
_REPLAY_PAGE = 500
_SUBSCRIBE_TYPES = frozenset({"subscribe", "psubscribe"})


class RecentIds:
    """The last `limit` ids seen, for de-duplication with bounded memory."""

    def __init__(self, limit: int = 10_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def add(self, item: str) -> bool:
        """True when `item` is new (and remember it)."""
        if item in self._ids:
            return False
        self._ids[item] = None
        if len(self._ids) > self._limit:
            self._ids.popitem(last=False)
        return True


@dataclass(frozen=True, slots=True)
class ExchangeFilter:
    """Exchanges to show; empty means every exchange."""

    ids: frozenset[int] = frozenset()
    names: frozenset[str] = frozenset()

    @classmethod
    def of(cls, refs: Iterable[ExchangeRef]) -> ExchangeFilter:
        refs = list(refs)
        return cls(
            frozenset(r.id for r in refs if r.id is not None),
            frozenset(r.name.lower() for r in refs if r.name),
        )

    @property
    def everything(self) -> bool:
        return not self.ids and not self.names

    def matches_alert(self, alert: Alert) -> bool:
        return self.everything or alert.source_exchange_id in self.ids

    def matches_event(self, message: ControlResponse | LifecycleEvent) -> bool:
        if self.everything:
            return True
        if isinstance(message, LifecycleEvent):
            return message.exchange_id in self.ids or message.exchange.lower() in self.names
        target = message.exchange.lower()
        return target in self.names or target in {str(i) for i in self.ids}


class Printer:
    """Counts what it printed so `--count N` can stop the tail; skips malformed input."""

    def __init__(self, *, as_json: bool, count: int | None, out: TextIO, err: TextIO) -> None:
        self.as_json = as_json
        self.count = count
        self.printed = 0
        self.skipped = 0
        self._out = out
        self._err = err

    @property
    def done(self) -> bool:
        return self.count is not None and self.printed >= self.count

    def emit(self, line: str) -> None:
        print(line, file=self._out, flush=True)
        self.printed += 1

    def skip(self, what: str) -> None:
        self.skipped += 1
        if self.skipped <= 10:  # enough to notice a bad producer without flooding the terminal
            print(f"livermore tail: skipped {what}", file=self._err, flush=True)


class AlertSink:
    """Alerts from the stream replay and the channels, each alert id printed once."""

    def __init__(self, printer: Printer, selection: ExchangeFilter) -> None:
        self._printer = printer
        self._selection = selection
        self._seen = RecentIds()

    @property
    def done(self) -> bool:
        return self._printer.done

    def offer(self, raw: bytes, stream_id: str | None = None) -> None:
        try:
            alert = messages.decode(raw, Alert)
        except msgspec.MsgspecError as exc:
            self._printer.skip(f"a malformed alert ({exc})")
            return
        if not self._selection.matches_alert(alert) or not self._seen.add(alert.id):
            return
        if self._printer.as_json:
            self._printer.emit(raw.decode())
        else:
            # A replayed line names its stream id: where `--since` can resume.
            self._printer.emit(render.alert_line(alert, stream_id))


class EventSink:
    """Lifecycle events and command responses from `channel:control:responses`."""

    def __init__(self, printer: Printer, selection: ExchangeFilter) -> None:
        self._printer = printer
        self._selection = selection

    @property
    def done(self) -> bool:
        return self._printer.done

    def offer(self, raw: bytes) -> None:
        try:
            message = messages.decode_response(raw)
        except msgspec.MsgspecError as exc:
            self._printer.skip(f"a malformed message ({exc})")
            return
        if self._selection.matches_event(message):
            self._printer.emit(
                raw.decode() if self._printer.as_json else render.event_line(message)
            )


async def replay(
    redis: aioredis.Redis, stream: str, since: str | None
) -> AsyncIterator[tuple[str, bytes]]:
    """(entry id, data) of every stream entry after `since` (all when None), oldest first."""
    start = f"({since}" if since else "-"
    while True:
        entries: list[Any] = list(
            await redis.xrange(stream, min=start, max="+", count=_REPLAY_PAGE) or []
        )
        if not entries:
            return
        for entry_id, fields in entries:
            data = (fields or {}).get(b"data")
            if data is not None:
                yield _text(entry_id), data
        start = f"({_text(entries[-1][0])}"


async def confirm_subscriptions(pubsub: Any, expected: int, timeout: float = 5.0) -> list[Any]:
    """Wait until the server confirmed `expected` (p)subscriptions; return messages that came
    in meanwhile (a message on the first channel may precede the second one's confirmation)."""
    early: list[Any] = []
    confirmed = 0
    async with asyncio.timeout(timeout):
        while confirmed < expected:
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            if message["type"] in _SUBSCRIBE_TYPES:
                confirmed += 1
            else:
                early.append(message)
    return early


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
