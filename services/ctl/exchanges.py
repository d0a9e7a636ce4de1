"""Exchanges named on the command line (a name or an id), resolved through Postgres `exchanges`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from livermore_common.db import Database

DB_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class ExchangeRef:
    """An exchange as far as it is known: both parts after a lookup, one part without."""

    id: int | None
    name: str | None

    @property
    def label(self) -> str:
        return self.name or str(self.id)


class DatabaseUnavailable(Exception):
    """Postgres could not be asked (down, not migrated); the message says why, without secrets."""


def split_refs(values: list[str] | None) -> list[str]:
    """`--exchange a --exchange b,c` → ["a", "b", "c"]."""
    return [part.strip() for value in values or () for part in value.split(",") if part.strip()]


def given(ref: str) -> ExchangeRef:
    """What the text alone says: an id (digits) or a name."""
    text = ref.strip()
    return ExchangeRef(int(text), None) if text.isdigit() else ExchangeRef(None, text.lower())


async def lookup(refs: list[str], database_url: str) -> list[ExchangeRef]:
    """Each ref's row; raises UnknownExchangeError (naming known ones) or DatabaseUnavailable."""
    try:
        async with asyncio.timeout(DB_TIMEOUT_S):
            async with Database(database_url, min_size=1, max_size=1) as db:
                rows = [await db.get_exchange(ref) for ref in refs]
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(_describe(exc)) from None
    return [ExchangeRef(row.id, row.name) for row in rows]


def _describe(exc: BaseException) -> str:
    # asyncpg's messages name the host and the problem, never the password of the URL.
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]
