"""`livermore up [--live] [--autostart EXCHANGE]…`: the whole system under one supervisor."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from livermore_common.config import ConfigError

from .children import Output
from .config import parse
from .credentials import ensure_credentials
from .run import run_up


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = parse(sys.argv[1:] if argv is None else argv, os.environ)
        credentials = ensure_credentials(os.environ, Path(settings.state_dir))
    except (ConfigError, OSError) as exc:
        print(f"livermore up: {exc}", file=sys.stderr)
        return 2
    # Children get the generated secrets and unbuffered, colour-free output.
    env = {**os.environ, **credentials.env, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    return asyncio.run(run_up(settings, env, credentials, Output()))


if __name__ == "__main__":
    raise SystemExit(main())
