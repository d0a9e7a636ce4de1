"""`livermore tail alerts|events`: print alerts from any exchange (VIS-02) or control traffic live.

    livermore tail alerts [--exchange NAME|ID ...] [--json] [--from-stream [--since ID]] [--count N]
    livermore tail events [--exchange NAME|ID ...] [--json] [--count N]

`alerts` pattern-subscribes `channel:alerts:*` (or the given exchanges' channels; names are
resolved through Postgres `exchanges`, ids need no database). `--from-stream` first replays the
durable alert stream (after `--since`), then goes live; an alert seen on both is printed once.
`events` prints lifecycle events and command responses from `channel:control:responses`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from livermore_common.config import CommonSettings, ConfigError, load_common
from livermore_common.errors import UnknownExchangeError
from livermore_common.keys import KeySpace
from livermore_common.logs import configure_logging
from livermore_common.redisbus import connect

from .exchanges import DatabaseUnavailable, ExchangeRef, given, lookup, split_refs
from .feeds import (
    STREAM_ID,
    AlertSink,
    EventSink,
    ExchangeFilter,
    Printer,
    confirm_subscriptions,
    replay,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments or an exchange that cannot be resolved: exit 2 with the message."""


@dataclass(frozen=True, slots=True)
class TailOptions:
    feed: str  # alerts | events
    refs: tuple[str, ...] = ()
    as_json: bool = False
    from_stream: bool = False
    since: str | None = None
    count: int | None = None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livermore tail", description="Print a feed live.")
    sub = parser.add_subparsers(dest="feed", required=True, metavar="FEED")
    alerts = sub.add_parser("alerts", help="alerts from every exchange (or the given ones)")
    events = sub.add_parser("events", help="lifecycle events and command responses")
    for p in (alerts, events):
        p.add_argument(
            "--exchange",
            action="append",
            metavar="NAME|ID",
            help="only this exchange (repeatable, or comma-separated); default every exchange",
        )
        p.add_argument("--json", action="store_true", help="print each message's raw JSON")
        p.add_argument("--count", type=int, metavar="N", help="exit after printing N messages")
    alerts.add_argument(
        "--from-stream", action="store_true", help="first replay the durable alert stream"
    )
    alerts.add_argument("--since", metavar="ID", help="with --from-stream: entries after this id")
    return parser


def options_from(args: argparse.Namespace) -> TailOptions:
    since = getattr(args, "since", None)
    from_stream = bool(getattr(args, "from_stream", False))
    if since is not None and not from_stream:
        raise UsageError("--since needs --from-stream")
    if since is not None and not STREAM_ID.match(since):
        raise UsageError(f"--since must be a stream id such as 1718000000000-0, not {since!r}")
    if args.count is not None and args.count < 1:
        raise UsageError("--count must be at least 1")
    return TailOptions(
        feed=args.feed,
        refs=tuple(split_refs(args.exchange)),
        as_json=args.json,
        from_stream=from_stream,
        since=since,
        count=args.count,
    )


async def resolve(options: TailOptions, database_url: str) -> list[ExchangeRef]:
    """Ids need no database; names do for alerts (channels are by id). Events match names too,
    so for them a database outage only narrows matching to what was typed."""
    refs = [given(r) for r in options.refs]
    if not refs or (options.feed == "alerts" and all(r.id is not None for r in refs)):
        return refs
    try:
        return await lookup(list(options.refs), database_url)
    except UnknownExchangeError as exc:
        raise UsageError(str(exc)) from None
    except DatabaseUnavailable as exc:
        if options.feed == "alerts":
            raise UsageError(
                f"cannot resolve exchange names without Postgres ({exc}); pass ids instead"
            ) from None
        print(f"livermore tail: Postgres unavailable ({exc}); matching as typed", file=sys.stderr)
        return refs


async def tail_alerts(
    redis: aioredis.Redis,
    keys: KeySpace,
    options: TailOptions,
    selection: ExchangeFilter,
    printer: Printer,
    stop: asyncio.Event,
) -> None:
    sink = AlertSink(printer, selection)
    pubsub = redis.pubsub()
    try:
        # Subscribe before replaying, so nothing published during the replay is missed.
        if selection.everything:
            await pubsub.psubscribe(keys.alerts_channel_pattern())
        else:
            await pubsub.subscribe(*[keys.alerts_channel(i) for i in sorted(selection.ids)])
        early = await confirm_subscriptions(
            pubsub, 1 if selection.everything else len(selection.ids)
        )
        if options.from_stream:
            async for entry_id, data in replay(redis, keys.alert_stream, options.since):
                sink.offer(data, entry_id)
                if sink.done:
                    return
        for message in early:
            sink.offer(message["data"])
        await _listen(pubsub, sink.offer, lambda: sink.done, stop)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def tail_events(
    redis: aioredis.Redis,
    keys: KeySpace,
    selection: ExchangeFilter,
    printer: Printer,
    stop: asyncio.Event,
) -> None:
    sink = EventSink(printer, selection)
    pubsub = redis.pubsub()
    try:
        await pubsub.subscribe(keys.control_responses_channel)
        for message in await confirm_subscriptions(pubsub, 1):
            sink.offer(message["data"])
        await _listen(pubsub, sink.offer, lambda: sink.done, stop)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def _listen(pubsub: Any, offer: Any, done: Any, stop: asyncio.Event) -> None:
    while not done() and not stop.is_set():
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message is not None:
            offer(message["data"])


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM end the tail cleanly (exit 0)."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def run_tail(options: TailOptions, settings: CommonSettings) -> int:
    selection = ExchangeFilter.of(await resolve(options, settings.database_url))
    printer = Printer(as_json=options.as_json, count=options.count, out=sys.stdout, err=sys.stderr)
    keys = KeySpace(settings.namespace)
    stop = asyncio.Event()
    with _stop_on_signals(stop):
        async with connect(settings.redis_url, client_name="livermore-tail") as redis:
            if options.feed == "alerts":
                await tail_alerts(redis, keys, options, selection, printer, stop)
            else:
                await tail_events(redis, keys, selection, printer, stop)
    return EXIT_OK


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        options = options_from(args)
        settings = load_common(os.environ if environ is None else environ)
        configure_logging(fmt=settings.log_format, level="warning")
        return asyncio.run(run_tail(options, settings))
    except (UsageError, ConfigError) as exc:
        print(f"livermore tail: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (RedisError, OSError) as exc:
        if isinstance(exc, BrokenPipeError):  # `| head`: the reader has gone, nothing to say
            _silence_stdout()
            return EXIT_OK
        print(f"livermore tail: Redis is not reachable ({type(exc).__name__})", file=sys.stderr)
        return EXIT_FAILED


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    raise SystemExit(main())
