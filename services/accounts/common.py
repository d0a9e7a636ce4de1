"""What the account commands share: the database URL, plain-text tables, user lookup."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

from livermore_common.config import load_common
from livermore_common.db import Database, UserRow


def database_url(explicit: str | None, environ: Mapping[str, str]) -> str:
    return explicit or load_common(environ).database_url


def fail(prog: str, message: str, *, code: int = 1, err: TextIO | None = None) -> int:
    print(f"{prog}: {message}", file=err or sys.stderr)
    return code


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], out: TextIO) -> None:
    """Left-aligned columns; None shows as an empty cell."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    for line in [list(headers), *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip(), file=out)


async def find_user(db: Database, ref: str) -> UserRow | None:
    """A user by username, or by id when `ref` is all digits and no such username exists."""
    user = await db.get_user(ref)
    if user is None and ref.isdigit():
        user = await db.get_user(int(ref))
    return user
