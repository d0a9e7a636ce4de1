"""`livermore alerts`: the alert evaluator."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence

from livermore_common.config import ConfigError
from livermore_common.keys import KeySpace
from livermore_common.lifecycle import check_health, main_entry
from livermore_common.logs import configure_logging

from .config import parse
from .service import run_alerts


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings, check = parse(sys.argv[1:] if argv is None else argv, os.environ)
    except ConfigError as exc:
        print(f"livermore alerts: {exc}", file=sys.stderr)
        return 2
    common = settings.common
    keys = KeySpace(common.namespace)
    if check:
        return 0 if asyncio.run(check_health(common.redis_url, keys, "alerts")) else 1
    configure_logging(fmt=common.log_format, level=common.log_level, service="alerts")
    return main_entry(
        "alerts",
        lambda ctx: run_alerts(ctx, settings),
        redis_url=common.redis_url,
        keys=keys,
        instance_id=common.instance_id or None,
    )


if __name__ == "__main__":
    raise SystemExit(main())
