"""Indicator worker settings."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

import msgspec

from livermore_common.config import CommonSettings, load_common


class IndicatorSettings(msgspec.Struct, frozen=True, kw_only=True):
    common: CommonSettings
    batch_size: int = 500
    # History read when a series is rebuilt (the candle sets keep at most this many anyway).
    rebuild_candles: int = 1000
    user_ttl_seconds: int = 86_400
    # DATA-04: user ids whose legacy user-scoped candle keys are read when the shared key is empty.
    legacy_user_ids: tuple[int, ...] = ()
    # A crashed worker's unacknowledged entries are taken over after this long.
    claim_idle_ms: int = 30_000


def parse(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[IndicatorSettings, bool]:
    p = argparse.ArgumentParser(prog="livermore indicators", description="indicator worker")
    p.add_argument("--check", action="store_true", help="exit 0 if an instance is healthy")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument(
        "--claim-idle-ms", type=int, default=30_000, help="reclaim entries idle this long"
    )
    p.add_argument("--legacy-user-ids", default="", help="read legacy keys of these users (a,b)")
    args = p.parse_args(list(argv))
    legacy = tuple(int(u) for u in args.legacy_user_ids.split(",") if u.strip())
    return (
        IndicatorSettings(
            common=load_common(environ),
            batch_size=max(1, args.batch_size),
            legacy_user_ids=legacy,
            claim_idle_ms=max(100, args.claim_idle_ms),
        ),
        bool(args.check),
    )
