"""The `livermore db` commands: each prints its own progress and returns an exit code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import asyncpg

from livermore_common.atlasdir import MigrationError, verify_directory, write_sum
from livermore_common.config import ConfigError, load_common
from livermore_common.migrate import (
    AppliedFile,
    default_migrations_dir,
    ensure_database,
    migrate,
    read_status,
    redact_url,
)
from livermore_common.schema_pull import MODELS_PATH, diff_summary, generate

Command = Callable[[argparse.Namespace, Mapping[str, str]], Awaitable[int]]


async def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    command = _COMMANDS[args.command]
    try:
        return await command(args, environ)
    except (MigrationError, ConfigError) as exc:
        return _fail(args.command, str(exc))
    except (OSError, asyncpg.PostgresError) as exc:
        url = redact_url(_database_url(args, environ)) if hasattr(args, "database_url") else ""
        return _fail(args.command, f"database {url}: {exc}")


def _fail(command: str, message: str) -> int:
    print(f"livermore db {command}: error: {message}", file=sys.stderr)
    return 1


def _database_url(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    url: str | None = args.database_url
    return url or load_common(environ).database_url


def _directory(args: argparse.Namespace, environ: Mapping[str, str]) -> Path:
    return Path(args.dir) if args.dir else default_migrations_dir(environ)


def _print_applied(done: AppliedFile) -> None:
    print(f"applied {done.name} ({done.statements} statements, {done.seconds * 1000:.0f} ms)")


async def _migrate(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    url = _database_url(args, environ)
    directory = _directory(args, environ)
    verify_directory(directory)  # refuse a tampered directory before touching any database
    if await ensure_database(url):
        print(f"created database {redact_url(url)}")
    result = await migrate(
        url,
        directory,
        to_version=args.to,
        revisions_schema=args.revisions_schema,
        on_applied=_print_applied,
    )
    if result.applied:
        print(f"migrated to version {result.current_version} ({len(result.applied)} files)")
    else:
        print(f"nothing to apply: the database is at version {result.current_version}")
    for name in result.drifted:
        print(f"warning: {name} changed after it was applied", file=sys.stderr)
    return 0


async def _status(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    url = _database_url(args, environ)
    status = await read_status(
        url, _directory(args, environ), revisions_schema=args.revisions_schema
    )
    if not status.database_exists:
        print(f"database {redact_url(url)} does not exist yet")
    print(f"current version: {status.current_version or 'none'}")
    for rev in status.revisions:
        print(f"  applied {rev.version} {rev.description} ({rev.executed_at:%Y-%m-%d %H:%M:%S}Z)")
    for name in status.pending:
        print(f"  pending {name}")
    for name in status.drifted:
        print(f"warning: {name} changed after it was applied", file=sys.stderr)
    if status.checksum_problem:
        return _fail("status", status.checksum_problem)
    return 0


async def _hash(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    path = write_sum(_directory(args, environ))
    print(f"wrote {path}")
    return 0


async def _pull(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    path = Path(args.output) if args.output else MODELS_PATH
    expected = await generate(_database_url(args, environ))
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if current == expected:
        print(f"{path} is up to date")
        return 0
    if args.check:
        print(diff_summary(current, expected, path), file=sys.stderr)
        return _fail("pull", f"{path} differs from the database schema; run `livermore db pull`")
    path.write_text(expected, encoding="utf-8")
    print(f"wrote {path}")
    return 0


_COMMANDS: dict[str, Command] = {
    "migrate": _migrate,
    "status": _status,
    "hash": _hash,
    "pull": _pull,
}
