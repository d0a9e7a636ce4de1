"""`livermore gateway [--host H] [--port P] [--check]`: the HTTP API and admin page."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from livermore_common.config import ConfigError
from livermore_common.keys import KeySpace
from livermore_common.lifecycle import main_entry
from livermore_common.logs import configure_logging

from .config import parse
from .server import check_health, serve


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings, check = parse(sys.argv[1:] if argv is None else argv, os.environ)
    except ConfigError as exc:
        print(f"livermore gateway: {exc}", file=sys.stderr)
        return 2
    if check:
        return 0 if check_health(settings.host, settings.port) else 1
    common = settings.common
    configure_logging(fmt=common.log_format, level=common.log_level, service="gateway")
    keys = KeySpace(common.namespace)
    return main_entry(
        "gateway",
        lambda ctx: serve(ctx, settings),
        redis_url=common.redis_url,
        keys=keys,
        instance_id=common.instance_id or None,
    )


if __name__ == "__main__":
    raise SystemExit(main())
