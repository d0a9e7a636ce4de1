"""Entry point of `livermore db {migrate,status,hash,pull}`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from services.dbtool.commands import run


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livermore db", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    url_help = "database URL (default: LIVERMORE_DATABASE_URL)"
    dir_help = "migration directory (default: LIVERMORE_MIGRATIONS_DIR or schema/atlas/migrations)"
    migrate = sub.add_parser("migrate", help="apply pending migrations (creates the database)")
    migrate.add_argument("--database-url", help=url_help)
    migrate.add_argument("--dir", help=dir_help)
    migrate.add_argument("--to", metavar="VERSION", help="stop after this version")
    migrate.add_argument("--revisions-schema", help="schema of atlas_schema_revisions")
    status = sub.add_parser("status", help="applied and pending migrations")
    status.add_argument("--database-url", help=url_help)
    status.add_argument("--dir", help=dir_help)
    status.add_argument("--revisions-schema", help="schema of atlas_schema_revisions")
    hash_ = sub.add_parser("hash", help="rewrite atlas.sum after adding or editing a migration")
    hash_.add_argument("--dir", help=dir_help)
    pull = sub.add_parser("pull", help="regenerate livermore_common/models.py from the database")
    pull.add_argument("--database-url", help=url_help)
    pull.add_argument("--check", action="store_true", help="fail if models.py is out of date")
    pull.add_argument("--output", help="module to write or check (default: the package's)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    return asyncio.run(run(args, os.environ))


if __name__ == "__main__":
    raise SystemExit(main())
