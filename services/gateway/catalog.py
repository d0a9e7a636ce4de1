"""The metadata the gateway reads from Postgres, as JSON-ready dicts, over `livermore_common.db`."""

from __future__ import annotations

from typing import Any, Protocol

from livermore_common.db import Database
from livermore_common.errors import UnknownExchangeError

from .rows import row_json

Row = dict[str, Any]


class Catalog(Protocol):
    async def list_exchanges(self) -> list[Row]: ...

    async def get_exchange(self, id_or_name: str) -> Row | None: ...

    async def exchange_symbols(self, exchange_id: int) -> list[Row]: ...

    async def recent_alerts(self, exchange_id: int | None, limit: int) -> list[Row]: ...


class DatabaseCatalog:
    """Adapts the shared `Database` (asyncpg) to what the handlers need."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_exchanges(self) -> list[Row]:
        return [row_json(r) for r in await self._db.list_exchanges()]

    async def get_exchange(self, id_or_name: str) -> Row | None:
        try:
            row = await self._db.get_exchange(id_or_name)
        except UnknownExchangeError:
            return None
        return row_json(row)

    async def exchange_symbols(self, exchange_id: int) -> list[Row]:
        return [row_json(r) for r in await self._db.list_exchange_symbols(exchange_id)]

    async def recent_alerts(self, exchange_id: int | None, limit: int) -> list[Row]:
        return [
            row_json(r) for r in await self._db.recent_alerts(exchange_id=exchange_id, limit=limit)
        ]
