"""Symbol-tier manager settings: `LIVERMORE_SYMBOLS_*` variables, overridden by flags."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

import msgspec

from livermore_common.config import (
    CommonSettings,
    ConfigError,
    Secret,
    load_common,
    load_exchange_ca_file,
)
from livermore_common.config import settings_from_env as _from_env
from livermore_common.secrets import load_key

from .tiers import DEFAULT_QUOTE_PREFERENCE, USD_QUOTES

ENV_PREFIX = "LIVERMORE_SYMBOLS_"


class SymbolSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    common: CommonSettings
    # exchanges.name values served; empty = every active exchange.
    exchanges: tuple[str, ...] = ()
    top_n: int = 20
    # Per-exchange Tier 1 sizes that differ from `top_n`.
    top_overrides: dict[str, int] = {}
    interval_s: float = 3600.0
    # After a failed refresh of an exchange, try again this soon instead of a full interval.
    retry_s: float = 60.0
    min_value_usd: float = 10.0
    quote_preference: tuple[str, ...] = DEFAULT_QUOTE_PREFERENCE
    tier1_quotes: tuple[str, ...] = tuple(sorted(USD_QUOTES))
    one_per_base: bool = True
    secrets_key: Secret = Secret("")
    once: bool = False
    # Extra CA file trusted for venue endpoints (LIVERMORE_EXCHANGE_CA_FILE), as the ingestor's.
    exchange_ca_file: str = ""

    def top_for(self, exchange: str) -> int:
        return self.top_overrides.get(exchange.lower(), self.top_n)


class _Env(msgspec.Struct, frozen=True, kw_only=True):
    """The raw `LIVERMORE_SYMBOLS_*` variables (flags win over them)."""

    top_n: int = 20
    top: str = ""
    exchanges: str = ""
    interval_s: float = 3600.0
    retry_s: float = 60.0
    min_value_usd: float = 10.0
    quote_preference: str = ""


def _names(text: str) -> tuple[str, ...]:
    return tuple(p.strip().lower() for p in text.split(",") if p.strip())


def _upper(text: str) -> tuple[str, ...]:
    return tuple(p.strip().upper() for p in text.split(",") if p.strip())


def parse_top(text: str, default: int) -> tuple[int, dict[str, int]]:
    """`30`, `coinbase=25,binance=50` or `30,binance=50` → (default N, per-exchange N)."""
    overrides: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, value = part.rpartition("=")
        try:
            count = int(value)
        except ValueError:
            raise ConfigError(f"--top: {part!r} is not N or exchange=N") from None
        if count < 0:
            raise ConfigError(f"--top: {part!r} must not be negative")
        if sep:
            overrides[name.strip().lower()] = count
        else:
            default = count
    return default, overrides


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="livermore symbols", description=__doc__)
    p.add_argument("--exchange", "--exchanges", dest="exchanges", help="names, comma-separated")
    p.add_argument("--top", help="Tier 1 size: N, or exchange=N pairs (coinbase=25,binance=50)")
    p.add_argument("--interval", type=float, help="seconds between refreshes (default 3600)")
    p.add_argument("--min-value", type=float, help="Tier 2 holding threshold in USD (10)")
    p.add_argument("--quote-preference", help="quotes naming held assets, in order (USD,USDT,…)")
    p.add_argument("--once", action="store_true", help="refresh every exchange once and exit")
    p.add_argument("--check", action="store_true", help="exit 0 if a manager is healthy")
    return p


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> SymbolSettings:
    env = _from_env(_Env, environ, prefix=ENV_PREFIX)
    top_n, overrides = parse_top(env.top, env.top_n)
    if args.top:
        top_n, more = parse_top(args.top, top_n)
        overrides |= more
    interval = env.interval_s if args.interval is None else args.interval
    min_value = env.min_value_usd if args.min_value is None else args.min_value
    if interval <= 0 or min_value < 0:
        raise ConfigError("--interval must be positive and --min-value not negative")
    preference = _upper(args.quote_preference or env.quote_preference)
    return SymbolSettings(
        common=load_common(environ),
        exchanges=_names(args.exchanges or env.exchanges),
        top_n=top_n,
        top_overrides=overrides,
        interval_s=interval,
        retry_s=min(env.retry_s, interval),
        min_value_usd=min_value,
        quote_preference=preference or DEFAULT_QUOTE_PREFERENCE,
        secrets_key=load_key(environ),
        once=bool(args.once),
        exchange_ca_file=load_exchange_ca_file(environ),
    )


def parse(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[SymbolSettings, bool]:
    args = build_parser().parse_args(list(argv))
    return settings_from_args(args, environ), bool(args.check)
