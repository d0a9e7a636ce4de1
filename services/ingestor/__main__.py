"""`livermore ingestor --exchange NAME [--autostart] [--symbols A,B] [--timeframes ...]`."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Sequence

from livermore_common.config import ConfigError
from livermore_common.keys import KeySpace
from livermore_common.lifecycle import check_health, main_entry
from livermore_common.logs import configure_logging

from .config import parse
from .runner import run_ingestor


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings, check = parse(sys.argv[1:] if argv is None else argv, os.environ)
    except ConfigError as exc:
        print(f"livermore ingestor: {exc}", file=sys.stderr)
        return 2
    common = settings.common
    keys = KeySpace(common.namespace)
    if check:
        healthy = asyncio.run(check_health(common.redis_url, keys, f"ingestor-{settings.exchange}"))
        return 0 if healthy else 1
    configure_logging(fmt=common.log_format, level=common.log_level, service="ingestor")
    instance = common.instance_id or f"{settings.exchange}-{uuid.uuid4().hex[:8]}"
    return main_entry(
        f"ingestor-{settings.exchange}",
        lambda ctx: run_ingestor(ctx, settings, keys),
        redis_url=common.redis_url,
        keys=keys,
        instance_id=instance,
    )


if __name__ == "__main__":
    raise SystemExit(main())
