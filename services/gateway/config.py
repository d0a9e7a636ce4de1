"""Gateway settings: `LIVERMORE_GATEWAY_*` variables over the shared environment settings."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

import msgspec

from livermore_common.config import (
    CommonSettings,
    ConfigError,
    Secret,
    load_common,
    settings_from_env,
)

GATEWAY_PREFIX = "LIVERMORE_GATEWAY_"


class GatewayEnv(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The gateway's own variables (`LIVERMORE_GATEWAY_TOKEN`, `_HOST`, `_PORT`, ...)."""

    token: Secret = Secret("")
    host: str = "127.0.0.1"
    port: int = 8080
    # How long a relayed command waits for ingestors to answer before 504.
    command_timeout: float = 5.0
    # Lifetime of the SSE session cookie set by POST /api/session.
    session_ttl_seconds: int = 12 * 3600


class GatewaySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    common: CommonSettings
    token: Secret
    host: str = "127.0.0.1"
    port: int = 8080
    command_timeout: float = 5.0
    session_ttl_seconds: int = 12 * 3600


def load_settings(environ: Mapping[str, str]) -> GatewaySettings:
    """Read and validate the settings; a missing token or bad port fails at start."""
    own = settings_from_env(GatewayEnv, environ, prefix=GATEWAY_PREFIX)
    if not own.token:
        raise ConfigError("LIVERMORE_GATEWAY_TOKEN is required (the API's bearer token)")
    if len(own.token.reveal()) < 16:
        raise ConfigError("LIVERMORE_GATEWAY_TOKEN must be at least 16 characters long")
    if not 0 <= own.port <= 65535:
        raise ConfigError(f"LIVERMORE_GATEWAY_PORT out of range: {own.port}")
    if own.command_timeout <= 0 or own.session_ttl_seconds <= 0:
        raise ConfigError("LIVERMORE_GATEWAY_COMMAND_TIMEOUT and _SESSION_TTL_SECONDS must be > 0")
    return GatewaySettings(
        common=load_common(environ),
        token=own.token,
        host=own.host,
        port=own.port,
        command_timeout=own.command_timeout,
        session_ttl_seconds=own.session_ttl_seconds,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="livermore gateway",
        description="Control gateway: HTTP API and admin page (settings from LIVERMORE_* env).",
    )
    p.add_argument("--host", help="override LIVERMORE_GATEWAY_HOST")
    p.add_argument("--port", type=int, help="override LIVERMORE_GATEWAY_PORT")
    p.add_argument(
        "--check", action="store_true", help="health check: GET /healthz on the configured port"
    )
    return p


def parse(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[GatewaySettings, bool]:
    """Settings from the environment with command-line overrides; also the `--check` flag."""
    args = build_parser().parse_args(list(argv))
    overrides = dict(environ)
    if args.host:
        overrides[f"{GATEWAY_PREFIX}HOST"] = args.host
    if args.port is not None:
        overrides[f"{GATEWAY_PREFIX}PORT"] = str(args.port)
    return load_settings(overrides), bool(args.check)
