"""Alert evaluator settings."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

import msgspec

from livermore_common.config import CommonSettings, Secret, load_common, settings_from_env


class AlertEnv(msgspec.Struct, frozen=True, kw_only=True):
    alert_webhook_url: Secret = Secret("")
    alert_webhook_per_minute: int = 25


class AlertSettings(msgspec.Struct, frozen=True, kw_only=True):
    common: CommonSettings
    webhook_url: Secret
    webhook_per_minute: int
    batch_size: int = 500
    record_history: bool = True


def parse(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[AlertSettings, bool]:
    p = argparse.ArgumentParser(prog="livermore alerts", description="alert evaluator")
    p.add_argument("--check", action="store_true", help="exit 0 if an instance is healthy")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--no-history", action="store_true", help="do not write alert_history")
    args = p.parse_args(list(argv))
    env = settings_from_env(AlertEnv, environ)
    return (
        AlertSettings(
            common=load_common(environ),
            webhook_url=env.alert_webhook_url,
            webhook_per_minute=env.alert_webhook_per_minute,
            batch_size=max(1, args.batch_size),
            record_history=not args.no_history,
        ),
        bool(args.check),
    )
