"""The migration runner behind `livermore db migrate`: applies Atlas-format migration files.

It keeps Atlas's own bookkeeping so the real Atlas CLI and this runner can take turns on one
database: the `atlas_schema_revisions` table with Atlas's columns, in Atlas's schema (the URL's
`search_path` when given, else the `atlas_schema_revisions` schema), revision hashes taken from
atlas.sum, and the advisory lock Atlas's `migrate apply` takes. Each file runs in one transaction
together with its revision row, so a file is either fully applied and recorded, or not at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import asyncpg
import msgspec

from livermore_common import __version__
from livermore_common.atlasdir import (
    ChecksumError,
    MigrationError,
    MigrationFile,
    file_hashes,
    read_files,
    split_statements,
    statement_hashes,
    verify_directory,
)

__all__ = [
    "AppliedFile",
    "ChecksumError",
    "MigrateResult",
    "MigrationError",
    "MigrationStatus",
    "Revision",
    "default_migrations_dir",
    "ensure_database",
    "migrate",
    "read_status",
]

MIGRATIONS_DIR_ENV = "LIVERMORE_MIGRATIONS_DIR"
REVISIONS_TABLE = "atlas_schema_revisions"
DEFAULT_REVISIONS_SCHEMA = "atlas_schema_revisions"
# Atlas's `migrate apply` locks this name (FNV-1 32-bit -> pg_advisory_lock), so sharing it keeps
# the Atlas CLI and this runner from applying at the same time.
LOCK_NAME = "atlas_migrate_execute"
OPERATOR_VERSION = f"Livermore migrate v{__version__}"
REVISION_TYPE_EXECUTE = 2  # Atlas's RevisionTypeExecute (1 = baseline, 4 = resolved)

# Atlas's own definition of the table (Postgres), so either tool can create it.
_REVISIONS_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    "version" character varying NOT NULL,
    "description" character varying NOT NULL,
    "type" bigint NOT NULL DEFAULT 2,
    "applied" bigint NOT NULL DEFAULT 0,
    "total" bigint NOT NULL DEFAULT 0,
    "executed_at" timestamptz NOT NULL,
    "execution_time" bigint NOT NULL,
    "error" text NULL,
    "error_stmt" text NULL,
    "hash" character varying NOT NULL,
    "partial_hashes" jsonb NULL,
    "operator_version" character varying NOT NULL,
    PRIMARY KEY ("version")
)
"""


class Revision(msgspec.Struct, frozen=True, kw_only=True):
    """One row of atlas_schema_revisions (the columns the runner reasons about)."""

    version: str
    description: str
    type: int
    applied: int
    total: int
    hash: str
    executed_at: datetime
    error: str | None = None


class AppliedFile(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: str
    statements: int
    seconds: float


class MigrateResult(msgspec.Struct, frozen=True, kw_only=True):
    applied: list[AppliedFile]
    current_version: str | None
    database_created: bool = False
    # Applied files whose recorded hash differs from atlas.sum now (edited after being applied).
    drifted: list[str] = []


class MigrationStatus(msgspec.Struct, frozen=True, kw_only=True):
    database_exists: bool
    revisions: list[Revision]
    pending: list[str]
    drifted: list[str]
    checksum_problem: str | None = None

    @property
    def current_version(self) -> str | None:
        return self.revisions[-1].version if self.revisions else None


def default_migrations_dir(environ: Mapping[str, str] | None = None) -> Path:
    """LIVERMORE_MIGRATIONS_DIR, else `<repo>/schema/atlas/migrations` next to this package."""
    env = os.environ if environ is None else environ
    override = env.get(MIGRATIONS_DIR_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "schema" / "atlas" / "migrations"


def advisory_lock_id(name: str = LOCK_NAME) -> int:
    """FNV-1 (32-bit) of the name: the key Atlas's Postgres driver passes to pg_advisory_lock."""
    value = 0x811C9DC5
    for byte in name.encode():
        value = (value * 0x01000193) % 2**32
        value ^= byte
    return value


def revisions_schema_for(url: str, override: str | None = None) -> str:
    """Atlas's rule: the flag, else the URL's search_path (a schema-bound URL), else its own."""
    if override:
        return override
    search_path = parse_qs(urlsplit(url).query).get("search_path", [""])[0]
    return search_path or DEFAULT_REVISIONS_SCHEMA


def redact_url(url: str) -> str:
    """The URL with its password masked, fit for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


async def ensure_database(url: str) -> bool:
    """Create the URL's database when it does not exist (via the `postgres` maintenance db)."""
    try:
        conn = await asyncpg.connect(url)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return False
    name = unquote(urlsplit(url).path.lstrip("/"))
    if not name:
        raise MigrationError(f"the database URL {redact_url(url)} names no database")
    admin = await asyncpg.connect(with_database(url, "postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {_ident(name)}")
    except asyncpg.DuplicateDatabaseError:
        return False  # another migrator created it a moment ago
    finally:
        await admin.close()
    return True


async def migrate(
    url: str,
    directory: Path | None = None,
    *,
    to_version: str | None = None,
    revisions_schema: str | None = None,
    create_database: bool = True,
    lock_timeout: float = 60.0,
    on_applied: Callable[[AppliedFile], None] | None = None,
) -> MigrateResult:
    """Verify the directory against atlas.sum, then apply pending files (up to `to_version`)."""
    directory = directory or default_migrations_dir()
    files = verify_directory(directory)
    hashes = dict(file_hashes([(f.name, f.content) for f in files]))
    created = await ensure_database(url) if create_database else False
    schema = revisions_schema_for(url, revisions_schema)
    conn = await asyncpg.connect(url)
    try:
        async with _migration_lock(conn, lock_timeout):
            await _ensure_revisions_table(conn, schema)
            revisions = await _read_revisions(conn, schema)
            applied: list[AppliedFile] = []
            for f in plan_pending(files, revisions, to_version=to_version):
                done = await _apply_file(conn, schema, f, hashes[f.name])
                applied.append(done)
                if on_applied is not None:
                    on_applied(done)
            current = applied[-1].version if applied else _last_version(revisions)
            drifted = _drifted(files, hashes, revisions)
    finally:
        await conn.close()
    return MigrateResult(
        applied=applied, current_version=current, database_created=created, drifted=drifted
    )


async def read_status(
    url: str, directory: Path | None = None, *, revisions_schema: str | None = None
) -> MigrationStatus:
    """What is applied, what is pending, and whether the directory still matches atlas.sum."""
    directory = directory or default_migrations_dir()
    files = read_files(directory)
    problem: str | None = None
    try:
        verify_directory(directory)
    except ChecksumError as exc:
        problem = str(exc)
    try:
        conn = await asyncpg.connect(url)
    except asyncpg.InvalidCatalogNameError:
        return MigrationStatus(
            database_exists=False,
            revisions=[],
            pending=[f.name for f in files],
            drifted=[],
            checksum_problem=problem,
        )
    try:
        revisions = await _read_revisions(conn, revisions_schema_for(url, revisions_schema))
    finally:
        await conn.close()
    last = _last_version(revisions)
    hashes = dict(file_hashes([(f.name, f.content) for f in files]))
    return MigrationStatus(
        database_exists=True,
        revisions=revisions,
        pending=[f.name for f in files if last is None or f.version > last],
        drifted=_drifted(files, hashes, revisions),
        checksum_problem=problem,
    )


def plan_pending(
    files: Sequence[MigrationFile], revisions: Sequence[Revision], *, to_version: str | None = None
) -> list[MigrationFile]:
    """Files after the last applied version, as Atlas's linear execution order defines them."""
    by_version = {f.version: f for f in files}
    for rev in revisions:
        if rev.error or rev.applied < rev.total:
            raise MigrationError(
                f"version {rev.version} is only partly applied ({rev.applied}/{rev.total} "
                f"statements){': ' + rev.error if rev.error else ''}; repair the database and "
                "mark it with `atlas migrate set` before migrating again"
            )
        if rev.version not in by_version:
            raise MigrationError(
                f"version {rev.version} is recorded as applied but no migration file has it"
            )
    last = _last_version(revisions)
    applied = {rev.version for rev in revisions}
    for f in files:
        if last is not None and f.version < last and f.version not in applied:
            raise MigrationError(
                f"{f.name} was never applied but is older than the last applied version {last}"
            )
    pending = [f for f in files if last is None or f.version > last]
    if to_version is not None:
        if to_version not in by_version:
            raise MigrationError(f"no migration file has version {to_version}")
        pending = [f for f in pending if f.version <= to_version]
    return pending


def _last_version(revisions: Sequence[Revision]) -> str | None:
    return revisions[-1].version if revisions else None


def _drifted(
    files: Sequence[MigrationFile], hashes: Mapping[str, str], revisions: Sequence[Revision]
) -> list[str]:
    names = {f.version: f.name for f in files}
    return [
        names[rev.version]
        for rev in revisions
        if rev.hash and rev.version in names and hashes[names[rev.version]] != rev.hash
    ]


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table(schema: str) -> str:
    return f"{_ident(schema)}.{_ident(REVISIONS_TABLE)}"


@contextlib.asynccontextmanager
async def _migration_lock(conn: asyncpg.Connection, timeout: float) -> AsyncIterator[None]:
    key = advisory_lock_id()
    try:
        await conn.execute("SELECT pg_advisory_lock($1::bigint)", key, timeout=timeout)
    except TimeoutError:
        raise MigrationError(
            f"another migrator has held the migration lock for over {timeout:g}s"
        ) from None
    try:
        yield
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1::bigint)", key)


async def _ensure_revisions_table(conn: asyncpg.Connection, schema: str) -> None:
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(schema)}")
    await conn.execute(_REVISIONS_DDL.format(table=_table(schema)))


async def _read_revisions(conn: asyncpg.Connection, schema: str) -> list[Revision]:
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", _table(schema))
    if not exists:
        return []
    rows = await conn.fetch(
        "SELECT version, description, type, applied, total, hash, executed_at, error "
        f"FROM {_table(schema)} ORDER BY version"
    )
    # Atlas Cloud keeps an identifier row (version ".atlas_cloud_identifier"): not a migration.
    return [msgspec.convert(dict(r), Revision) for r in rows if not r["version"].startswith(".")]


async def _apply_file(
    conn: asyncpg.Connection, schema: str, f: MigrationFile, file_hash: str
) -> AppliedFile:
    statements = split_statements(f.content.decode("utf-8"))
    executed_at = datetime.now(UTC)
    started = time.perf_counter()
    async with conn.transaction():
        for index, statement in enumerate(statements, start=1):
            try:
                await conn.execute(statement)
            except asyncpg.PostgresError as exc:
                first_line = statement.splitlines()[0]
                raise MigrationError(
                    f"{f.name}: statement {index} of {len(statements)} failed ({first_line}): "
                    f"{exc}; nothing of this file was applied"
                ) from exc
        elapsed = time.perf_counter() - started
        await conn.execute(
            f"INSERT INTO {_table(schema)} (version, description, type, applied, total, "
            "executed_at, execution_time, error, error_stmt, hash, partial_hashes, "
            "operator_version) VALUES ($1, $2, $3, $4, $4, $5, $6, NULL, NULL, $7, $8::jsonb, $9)",
            f.version,
            f.description,
            REVISION_TYPE_EXECUTE,
            len(statements),
            executed_at,
            int(elapsed * 1e9),  # Atlas stores a Go time.Duration: nanoseconds
            file_hash,
            json.dumps(statement_hashes(statements)),
            OPERATOR_VERSION,
        )
    return AppliedFile(name=f.name, version=f.version, statements=len(statements), seconds=elapsed)
