"""Sending one signed command and reporting every answer as it arrives (for `livermore ctl`)."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from livermore_common import messages
from livermore_common.config import CommonSettings
from livermore_common.control import ControlClient
from livermore_common.errors import UnknownExchangeError
from livermore_common.instances import live_ingestor_instances
from livermore_common.keys import KeySpace
from livermore_common.messages import ControlResponse
from livermore_common.redisbus import connect

from . import render
from .exchanges import DatabaseUnavailable, ExchangeRef, given, lookup

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Commands answered by one symbol manager (claimed), not by every ingestor instance.
SINGLE_ANSWER = frozenset({"refresh-symbols"})


@dataclass(frozen=True, slots=True)
class CommandRequest:
    verb: str  # the wire verb: start, stop, getStatus, force-backfill, refresh-symbols
    exchange: str  # as typed: a name, an id, or (refresh-symbols) `all`
    timeout: float
    as_json: bool = False
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Outcome:
    expected: int
    responses: list[ControlResponse] = field(default_factory=list)

    @property
    def finals(self) -> list[ControlResponse]:
        return [r for r in self.responses if r.status != "ack"]

    @property
    def errors(self) -> list[ControlResponse]:
        return [r for r in self.finals if r.status == "error"]


class Reporter:
    """Prints answers as they arrive (text or JSON lines on stdout) and notes on stderr."""

    def __init__(self, request: CommandRequest, out: TextIO, err: TextIO) -> None:
        self._request = request
        self._out = out
        self._err = err

    def note(self, text: str) -> None:
        print(f"livermore ctl: {text}", file=self._err, flush=True)

    def info(self, text: str) -> None:
        """Progress and summaries: stdout for people, stderr when stdout carries JSON."""
        print(text, file=self._err if self._request.as_json else self._out, flush=True)

    def response(self, response: ControlResponse) -> None:
        if self._request.as_json:
            print(messages.encode(response).decode(), file=self._out, flush=True)
            return
        lines = [render.response_line(response)]
        lines += render.response_details(self._request.verb, response, render.now_ms())
        print("\n".join(lines), file=self._out, flush=True)


async def run_command(
    request: CommandRequest,
    settings: CommonSettings,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Send the command, print each answer, and return the exit code."""
    reporter = Reporter(request, out or sys.stdout, err or sys.stderr)
    keys = KeySpace(settings.namespace)
    try:
        async with connect(settings.redis_url, client_name="livermore-ctl") as redis:
            target = await _target(request, settings, redis, keys, reporter)
            if target is None:
                return EXIT_USAGE
            outcome = await _send(request, settings, redis, keys, target, reporter)
    except (RedisError, OSError) as exc:
        reporter.note(f"Redis is not reachable ({type(exc).__name__}: {exc})")
        return EXIT_FAILED
    return _summarize(request, target, outcome, reporter)


async def _target(
    request: CommandRequest,
    settings: CommonSettings,
    redis: aioredis.Redis,
    keys: KeySpace,
    reporter: Reporter,
) -> ExchangeRef | None:
    """The exchange's id and name, from Postgres; None (usage error) when it does not exist."""
    if request.verb in SINGLE_ANSWER:
        return given(request.exchange)  # the symbol manager resolves names itself
    try:
        return (await lookup([request.exchange], settings.database_url))[0]
    except UnknownExchangeError as exc:
        reporter.note(str(exc))
        return None
    except DatabaseUnavailable as exc:
        reporter.note(f"cannot read exchanges from Postgres ({exc}); not counting instances")
    ref = given(request.exchange)
    if ref.id is not None:  # the status hash remembers the name of an exchange that ran
        name = await redis.hget(keys.exchange_status_key(ref.id), "exchange")
        return ExchangeRef(ref.id, _text(name) if name else None)
    return ref


async def _expected_answers(
    request: CommandRequest, redis: aioredis.Redis, keys: KeySpace, target: ExchangeRef
) -> int:
    """How many final answers to wait for: one per live ingestor instance (at least one)."""
    if request.verb in SINGLE_ANSWER or target.id is None or target.name is None:
        return 1
    return max(1, len(await live_ingestor_instances(redis, keys, target.id, target.name)))


async def _send(
    request: CommandRequest,
    settings: CommonSettings,
    redis: aioredis.Redis,
    keys: KeySpace,
    target: ExchangeRef,
    reporter: Reporter,
) -> Outcome:
    outcome = Outcome(await _expected_answers(request, redis, keys, target))
    # Ingestors answer to their name (or id); the symbol manager also to `all`.
    address = target.name or request.exchange
    waiting = "the symbol manager" if request.verb in SINGLE_ANSWER else "instance(s)"
    count = "" if request.verb in SINGLE_ANSWER else f"{outcome.expected} "
    reporter.info(
        f"{request.verb} {target.label}: waiting up to {request.timeout:g}s for {count}{waiting}"
    )
    client = ControlClient(redis, keys, settings.control_secret.reveal())
    answers = client.stream(
        request.verb,
        address,
        request.params,
        timeout=request.timeout,
        expect=outcome.expected,
    )
    async with contextlib.aclosing(answers):
        async for response in answers:
            outcome.responses.append(response)
            reporter.response(response)
    return outcome


def _summarize(
    request: CommandRequest, target: ExchangeRef, outcome: Outcome, reporter: Reporter
) -> int:
    verb, label, finals = request.verb, target.label, outcome.finals
    if not outcome.responses:
        who = "a symbol manager" if verb in SINGLE_ANSWER else "an ingestor"
        reporter.note(
            f"no answer to {verb} for {label} (waited up to {request.timeout:g}s; "
            f"is {who} for {label} running, with the same LIVERMORE_CONTROL_SECRET?)"
        )
        return EXIT_FAILED
    if len(finals) < outcome.expected:
        reporter.note(
            f"timeout: {len(finals)} of {outcome.expected} instance(s) finished {verb} "
            f"for {label} within {request.timeout:g}s"
        )
        return EXIT_FAILED
    if outcome.errors:
        reporter.note(f"{verb} failed on {len(outcome.errors)} of {len(finals)} instance(s)")
        return EXIT_FAILED
    statuses = ", ".join(sorted({r.status for r in finals}))
    reporter.info(f"{verb} {label}: {len(finals)} answer(s): {statuses}")
    return EXIT_OK


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
