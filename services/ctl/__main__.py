"""`livermore ctl start|stop|status|force-backfill|refresh-symbols EXCHANGE`: signed commands.

Signs the command with LIVERMORE_CONTROL_SECRET, publishes it on `channel:control` and prints each
answer as it arrives (an `ack`, then `success`/`error`/`already_started`/`already_idle` from every
live ingestor instance). Exit codes: 0 all answered without error, 1 an error or a timeout, 2 a
usage error (no secret, unknown exchange, bad arguments).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence

from livermore_common.config import ConfigError, load_common
from livermore_common.logs import configure_logging

from .commands import EXIT_FAILED, EXIT_USAGE, CommandRequest, run_command

# action -> (wire verb, help, default timeout in seconds)
ACTIONS: dict[str, tuple[str, str, float]] = {
    "start": ("start", "connect the exchange (every instance answers)", 10.0),
    "stop": ("stop", "disconnect and return to idle", 10.0),
    "status": ("getStatus", "connection state, heartbeat, symbols and counters per instance", 10.0),
    "force-backfill": ("force-backfill", "fetch missing closed candles by REST now", 10.0),
    "refresh-symbols": ("refresh-symbols", "recompute the symbol tiers now (symbol manager)", 60.0),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livermore ctl",
        description="Send a signed control command and print the answers.",
        epilog="Needs LIVERMORE_CONTROL_SECRET (the secret the services share).",
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, (_, help_, timeout) in ACTIONS.items():
        p = sub.add_parser(action, help=help_)
        p.add_argument("exchange", metavar="EXCHANGE", help="exchange name or id (coinbase, 1)")
        p.add_argument(
            "--timeout",
            type=float,
            default=timeout,
            metavar="S",
            help=f"seconds to wait for every answer (default {timeout:g})",
        )
        p.add_argument("--json", action="store_true", help="print each answer as a JSON line")
        if action == "force-backfill":
            p.add_argument("--symbols", default="", help="comma-separated symbols (default all)")
    return parser


def request_from(args: argparse.Namespace) -> CommandRequest:
    verb = ACTIONS[args.action][0]
    params: dict[str, object] = {}
    symbols = [s.strip() for s in getattr(args, "symbols", "").split(",") if s.strip()]
    if symbols:
        params["symbols"] = symbols
    return CommandRequest(
        verb=verb,
        exchange=args.exchange.strip(),
        timeout=args.timeout,
        as_json=args.json,
        params=params,
    )


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.timeout <= 0:
        print("livermore ctl: --timeout must be positive", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = load_common(os.environ if environ is None else environ)
    except ConfigError as exc:
        print(f"livermore ctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not settings.control_secret:
        print(
            "livermore ctl: LIVERMORE_CONTROL_SECRET is not set; commands must be signed with the"
            " secret the services share",
            file=sys.stderr,
        )
        return EXIT_USAGE
    configure_logging(fmt=settings.log_format, level="warning")
    try:
        return asyncio.run(run_command(request_from(args), settings))
    except KeyboardInterrupt:
        return EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
