"""Atlas's versioned migration directory: file names, the atlas.sum integrity file, statements.

The sum follows Atlas (`sql/migrate/dir.go`): one running SHA-256 over the `*.sql` files sorted by
name, fed each file's name then its bytes; a file's hash is the base64 (standard, padded) of the
running digest after it; the first line is `h1:` + base64 SHA-256 over the concatenated
(name, hash) pairs; then one `name h1:hash` line per file. Atlas's `atlas:sum ignore` and
`atlas:delimiter` directives are not supported (no Livermore migration uses them).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from itertools import zip_longest
from pathlib import Path

import msgspec

from livermore_common.errors import PermanentError

SUM_FILE = "atlas.sum"


class MigrationError(PermanentError):
    """A migration cannot be applied: a broken directory, a failing statement, a foreign state."""


class ChecksumError(MigrationError):
    """The directory disagrees with atlas.sum; `file` names the offending file."""

    def __init__(self, message: str, *, file: str) -> None:
        super().__init__(message)
        self.file = file


class MigrationFile(msgspec.Struct, frozen=True):
    """One `VERSION_description.sql` file, parsed the way Atlas parses it."""

    name: str
    content: bytes

    @property
    def version(self) -> str:
        return self.name.removesuffix(".sql").split("_", 1)[0]

    @property
    def description(self) -> str:
        parts = self.name.split("_", 1)
        return parts[1].removesuffix(".sql") if len(parts) == 2 else ""


def read_files(directory: Path) -> list[MigrationFile]:
    """The directory's `*.sql` files (not recursive), sorted by name as Atlas sorts them."""
    if not directory.is_dir():
        raise MigrationError(f"migration directory {directory} does not exist")
    paths = sorted(p for p in directory.glob("*.sql") if p.is_file())
    return [MigrationFile(name=p.name, content=p.read_bytes()) for p in paths]


def file_hashes(files: Sequence[tuple[str, bytes]]) -> list[tuple[str, str]]:
    """(name, base64 running digest after that file) for each (name, bytes), in the given order."""
    running = hashlib.sha256()
    out: list[tuple[str, str]] = []
    for name, content in files:
        running.update(name.encode())
        running.update(content)
        out.append((name, base64.b64encode(running.copy().digest()).decode()))
    return out


def sum_of(hashes: Sequence[tuple[str, str]]) -> str:
    """The directory hash of atlas.sum's first line (without `h1:`)."""
    digest = hashlib.sha256()
    for name, file_hash in hashes:
        digest.update(name.encode())
        digest.update(file_hash.encode())
    return base64.b64encode(digest.digest()).decode()


def render_sum(files: Sequence[tuple[str, bytes]]) -> str:
    """The full text of atlas.sum for these files (sorted by name first)."""
    hashes = file_hashes(sorted(files))
    lines = [f"h1:{sum_of(hashes)}"] + [f"{name} h1:{file_hash}" for name, file_hash in hashes]
    return "\n".join(lines) + "\n"


def parse_sum(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(directory hash, [(name, hash)]) from atlas.sum text; a malformed line is an error."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("h1:"):
        raise ChecksumError("atlas.sum is malformed: no `h1:` first line", file=SUM_FILE)
    entries: list[tuple[str, str]] = []
    for number, line in enumerate(lines[1:], start=2):
        name, sep, file_hash = line.partition("h1:")
        if not sep:
            raise ChecksumError(f"atlas.sum line {number} is malformed: {line!r}", file=SUM_FILE)
        entries.append((name.strip(), file_hash))
    return lines[0].removeprefix("h1:"), entries


def write_sum(directory: Path) -> Path:
    """Recompute and write atlas.sum for the directory (what `atlas migrate hash` does)."""
    files = read_files(directory)
    path = directory / SUM_FILE
    path.write_text(render_sum([(f.name, f.content) for f in files]), encoding="utf-8")
    return path


def verify_directory(directory: Path) -> list[MigrationFile]:
    """The directory's files after checking every one against atlas.sum; else ChecksumError."""
    files = read_files(directory)
    _refuse_duplicate_versions(files)
    sum_path = directory / SUM_FILE
    if not sum_path.is_file():
        if files:
            raise ChecksumError(
                f"{sum_path} is missing; run `livermore db hash` to create it", file=SUM_FILE
            )
        return files
    total, recorded = parse_sum(sum_path.read_text(encoding="utf-8"))
    if sum_of(recorded) != total:
        raise ChecksumError(
            "atlas.sum was edited by hand: its first line does not match its entries",
            file=SUM_FILE,
        )
    problem = _first_difference(recorded, file_hashes([(f.name, f.content) for f in files]))
    if problem is not None:
        message, name = problem
        raise ChecksumError(f"{message} (directory {directory})", file=name)
    return files


def _refuse_duplicate_versions(files: Sequence[MigrationFile]) -> None:
    seen: dict[str, str] = {}
    for f in files:
        if f.version in seen:
            raise ChecksumError(
                f"{f.name} and {seen[f.version]} share version {f.version}", file=f.name
            )
        seen[f.version] = f.name


def _first_difference(
    recorded: Sequence[tuple[str, str]], actual: Sequence[tuple[str, str]]
) -> tuple[str, str] | None:
    """(message, file) for the first file that differs; hashes run, so later ones follow."""
    recorded_names = {name for name, _ in recorded}
    for rec, act in zip_longest(recorded, actual):
        if act is None:
            return f"{rec[0]} is listed in atlas.sum but the file is missing", rec[0]
        if rec is None or act[0] not in recorded_names:
            return f"unknown migration file {act[0]}: it is not in atlas.sum", act[0]
        if rec[0] != act[0]:
            return f"{rec[0]} is listed in atlas.sum but the file is missing", rec[0]
        if rec[1] != act[1]:
            return f"{act[0]} was changed: its hash does not match atlas.sum", act[0]
    return None


# ---- statements ----------------------------------------------------------------------------

_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


def split_statements(sql: str) -> list[str]:
    """Statements as Atlas lexes them: leading comments dropped, text ends with its `;`.

    Quotes, quoted identifiers, dollar-quoted bodies and comments may contain `;`.
    """
    statements: list[str] = []
    i = _skip_trivia(sql, 0)
    while i < len(sql):
        end = _statement_end(sql, i)
        text = sql[i:end].strip()
        if text:
            statements.append(text)
        i = _skip_trivia(sql, end)
    return statements


def statement_hashes(statements: Sequence[str]) -> list[str]:
    """Atlas's partial hashes: `h1:` + base64 of a running SHA-256 after each statement."""
    running = hashlib.sha256()
    out: list[str] = []
    for statement in statements:
        running.update(statement.encode())
        out.append("h1:" + base64.b64encode(running.copy().digest()).decode())
    return out


def _skip_trivia(sql: str, i: int) -> int:
    while i < len(sql):
        if sql[i].isspace():
            i += 1
        elif sql.startswith("--", i):
            i = _line_end(sql, i)
        elif sql.startswith("/*", i):
            i = _block_comment_end(sql, i)
        else:
            break
    return i


def _statement_end(sql: str, i: int) -> int:
    while i < len(sql):
        if sql[i] == ";":
            return i + 1
        i = _token_end(sql, i)
    return len(sql)


def _token_end(sql: str, i: int) -> int:
    char = sql[i]
    if char in "'\"":
        return _quoted_end(sql, i, char)
    if sql.startswith("--", i):
        return _line_end(sql, i)
    if sql.startswith("/*", i):
        return _block_comment_end(sql, i)
    if char == "$" and (tag := _DOLLAR_TAG.match(sql, i)):
        close = sql.find(tag.group(0), tag.end())
        return len(sql) if close < 0 else close + len(tag.group(0))
    return i + 1


def _line_end(sql: str, i: int) -> int:
    newline = sql.find("\n", i)
    return len(sql) if newline < 0 else newline + 1


def _block_comment_end(sql: str, i: int) -> int:
    depth = 0  # Postgres block comments nest
    while i < len(sql):
        if sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    return len(sql)


def _quoted_end(sql: str, i: int, quote: str) -> int:
    i += 1
    while i < len(sql):
        if sql[i] == quote:
            if sql.startswith(quote * 2, i):  # a doubled quote is an escaped quote
                i += 2
                continue
            return i + 1
        i += 1
    return len(sql)
