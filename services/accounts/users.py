"""`livermore users add --username U [--email E] [--display-name D] [--role R]` and `list`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence

import asyncpg
import msgspec

from livermore_common.config import ConfigError
from livermore_common.db import Database

from .common import database_url, fail, table

PROG = "livermore users"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="register and list users")
    parser.add_argument("--database-url", help="default: LIVERMORE_DATABASE_URL")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = sub.add_parser("add", help="create a user")
    add.add_argument("--username", required=True)
    add.add_argument("--email")
    add.add_argument("--display-name")
    add.add_argument("--role", default="user", help="default: user")
    listing = sub.add_parser("list", help="list users")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


async def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    async with Database(database_url(args.database_url, environ), max_size=1) as db:
        if args.command == "add":
            return await _add(db, args)
        return await _list(db, as_json=args.json)


async def _add(db: Database, args: argparse.Namespace) -> int:
    username = args.username.strip()
    if not username:
        return fail(PROG, "--username must not be empty", code=2)
    try:
        user = await db.create_user(
            username, email=args.email, display_name=args.display_name, role=args.role
        )
    except asyncpg.UniqueViolationError:
        return fail(PROG, f"user {username!r} already exists")
    print(f"created user {user.id} ({user.username}, role {user.role})")
    return 0


async def _list(db: Database, *, as_json: bool) -> int:
    users = await db.list_users()
    if as_json:
        for user in users:
            fields = ("id", "username", "email", "display_name", "role", "is_active")
            print(msgspec.json.encode({f: getattr(user, f) for f in fields}).decode())
        return 0
    table(
        ("ID", "USERNAME", "ROLE", "EMAIL", "DISPLAY NAME", "ACTIVE"),
        [(u.id, u.username, u.role, u.email, u.display_name, u.is_active) for u in users],
        sys.stdout,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        return asyncio.run(run(args, os.environ))
    except ConfigError as exc:
        return fail(PROG, str(exc), code=2)
    except (OSError, asyncpg.PostgresError) as exc:
        return fail(PROG, f"database unavailable: {exc}")


if __name__ == "__main__":
    raise SystemExit(main())
