"""Ingestor settings: command-line choices over the shared environment settings."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

import msgspec

from livermore_common.config import (
    CommonSettings,
    ConfigError,
    load_common,
    load_exchange_ca_file,
)
from livermore_common.timeframes import DEFAULT_TIMEFRAMES, parse_timeframes


class IngestorSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    common: CommonSettings
    exchange: str
    autostart: bool = False
    # Empty = follow the symbol manager's merged list (or the top-N default until it exists).
    symbols: tuple[str, ...] = ()
    timeframes: tuple[str, ...] = DEFAULT_TIMEFRAMES
    default_symbol_count: int = 20
    # Closed candles fetched per series at start when nothing is stored yet.
    history_candles: int = 200
    max_candles: int = 1000
    user_ttl_seconds: int = 86_400
    # Also publish on the previous release's user-scoped channel for these user ids.
    legacy_user_ids: tuple[int, ...] = ()
    backfill_concurrency: int = 8
    # Grace after a bucket's end (exchange clock) before an incomplete aggregate is repaired.
    close_grace_ms: int = 3_000
    stall_timeout_s: float = 0.0  # 0 = derived from the venue's expected message interval
    # PEM certificates trusted for the venue's wss:// and https:// besides the system's (e.g. the
    # simulator's with `--tls`); from LIVERMORE_EXCHANGE_CA_FILE. Verification always stays on.
    exchange_ca_file: str = ""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="livermore ingestor", description=__doc__)
    p.add_argument("--exchange", required=True, help="exchanges.name, e.g. coinbase or binance")
    p.add_argument(
        "--autostart",
        nargs="?",
        const=True,
        default=False,
        metavar="EXCHANGE",
        help="connect at once instead of waiting for `start` (optionally naming the exchange)",
    )
    p.add_argument("--symbols", default="", help="comma-separated symbols (default: follow tiers)")
    p.add_argument("--timeframes", default=",".join(DEFAULT_TIMEFRAMES))
    p.add_argument("--history", type=int, default=200, help="closed candles to load per series")
    p.add_argument("--legacy-user-ids", default="", help="compatibility mode: user ids (a,b)")
    p.add_argument("--check", action="store_true", help="exit 0 if an instance is healthy")
    return p


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> IngestorSettings:
    exchange = args.exchange.strip().lower()
    autostart = args.autostart
    if isinstance(autostart, str):
        if autostart.strip().lower() != exchange:
            raise ConfigError(
                f"--autostart names {autostart!r} but this ingestor serves {exchange!r}"
            )
        autostart = True
    symbols = tuple(s.strip() for s in args.symbols.split(",") if s.strip())
    try:
        timeframes = parse_timeframes(args.timeframes)
        legacy = tuple(int(u) for u in args.legacy_user_ids.split(",") if u.strip())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not timeframes:
        raise ConfigError("--timeframes must name at least one timeframe")
    ca_file = load_exchange_ca_file(environ)
    return IngestorSettings(
        common=load_common(environ),
        exchange=exchange,
        autostart=bool(autostart),
        symbols=symbols,
        timeframes=timeframes,
        history_candles=max(1, args.history),
        legacy_user_ids=legacy,
        exchange_ca_file=ca_file,
    )


def parse(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[IngestorSettings, bool]:
    args = build_parser().parse_args(list(argv))
    return settings_from_args(args, environ), bool(args.check)
