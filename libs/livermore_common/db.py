"""The Postgres layer: an asyncpg pool as an async context manager, with typed repository helpers.

Rows come back as the generated models of `livermore_common.models` (see `livermore db pull`);
json/jsonb columns are decoded to Python objects. Exchange lookups that miss raise
`UnknownExchangeError` naming the exchanges that do exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Self, TypeVar

import asyncpg
import msgspec

from livermore_common.errors import UnknownExchangeError
from livermore_common.messages import Alert
from livermore_common.models import (
    AlertHistoryRow,
    ExchangeRow,
    ExchangeSymbolRow,
    PositionRow,
    UserExchangeRow,
    UserRow,
)

__all__ = [
    "AlertHistoryRow",
    "Database",
    "ExchangeRow",
    "ExchangeSymbolRow",
    "PositionRow",
    "SymbolUpsert",
    "UserExchangeRow",
    "UserRow",
]

R = TypeVar("R", bound=msgspec.Struct)
Number = Decimal | float | int | str

# user_exchanges.credentials holds only environment-variable names or encrypted blobs.
CREDENTIAL_KINDS = frozenset({"env", "encrypted"})


class SymbolUpsert(msgspec.Struct, frozen=True, kw_only=True):
    """One exchange_symbols row to insert or refresh (keyed by exchange and symbol)."""

    symbol: str
    base: str
    quote: str
    volume_24h: float | None = None
    volume_rank: int | None = None
    tier: int = 1
    is_active: bool = True


def _encode_json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=_encode_json, decoder=msgspec.json.decode, schema="pg_catalog"
        )


def _decimal(value: Number | None) -> Decimal | None:
    # Through str so a float keeps its shortest repr (0.1, not 0.1000000000000000055...).
    return None if value is None else Decimal(str(value))


def _count(status: str) -> int:
    """Rows touched, from a command status such as `UPDATE 3` or `INSERT 0 1`."""
    return int(status.rsplit(" ", 1)[-1])


def _check_credentials(credentials: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    unknown = sorted(set(credentials) - CREDENTIAL_KINDS)
    if unknown:
        raise ValueError(
            f"credentials may hold only {sorted(CREDENTIAL_KINDS)} (environment-variable names "
            f"or encrypted blobs, never plain secrets); got keys {unknown}"
        )
    for kind, fields in credentials.items():
        if not isinstance(fields, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in fields.items()
        ):
            raise ValueError(f"credentials[{kind!r}] must map field names to strings")
    return {kind: dict(fields) for kind, fields in credentials.items()}


class Database:
    """A connection pool over one database; `async with Database(url) as db: ...`."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 5) -> None:
        self._url = url
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None

    async def open(self) -> Self:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self._url,
                min_size=self._min_size,
                max_size=self._max_size,
                init=_init_connection,
            )
        return self

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record]:
        if self._pool is None:
            raise RuntimeError("Database is not open: use `async with Database(url)`")
        return self._pool

    async def _rows(self, model: type[R], query: str, *args: object) -> list[R]:
        return [msgspec.convert(dict(r), model) for r in await self.pool.fetch(query, *args)]

    async def _row(self, model: type[R], query: str, *args: object) -> R | None:
        row = await self.pool.fetchrow(query, *args)
        return None if row is None else msgspec.convert(dict(row), model)

    # ---- exchanges ---------------------------------------------------------------------------

    async def get_exchange(self, id_or_name: int | str) -> ExchangeRow:
        """The row by id (an int or a string of digits) or by name (case-insensitive)."""
        key: int | str
        if isinstance(id_or_name, int) or id_or_name.isdigit():
            query, key = "SELECT * FROM exchanges WHERE id = $1", int(id_or_name)
        else:
            query, key = "SELECT * FROM exchanges WHERE lower(name) = lower($1)", id_or_name
        row = await self._row(ExchangeRow, query, key)
        if row is None:
            raise UnknownExchangeError(await self._unknown_exchange(id_or_name))
        return row

    async def list_exchanges(self, *, active_only: bool = False) -> list[ExchangeRow]:
        return await self._rows(
            ExchangeRow,
            "SELECT * FROM exchanges WHERE is_active OR NOT $1 ORDER BY id",
            active_only,
        )

    async def set_exchange_endpoints(self, name: str, ws_url: str, rest_url: str) -> ExchangeRow:
        """Point an exchange at other endpoints (the simulator points rows at itself)."""
        row = await self._row(
            ExchangeRow,
            "UPDATE exchanges SET ws_url = $2, rest_url = $3, updated_at = now() "
            "WHERE lower(name) = lower($1) RETURNING *",
            name,
            ws_url,
            rest_url,
        )
        if row is None:
            raise UnknownExchangeError(await self._unknown_exchange(name))
        return row

    async def _unknown_exchange(self, id_or_name: int | str) -> str:
        rows = await self.pool.fetch("SELECT id, name FROM exchanges ORDER BY id")
        known = ", ".join(f"{r['name']} ({r['id']})" for r in rows) or "none (run migrations)"
        return f"unknown exchange {id_or_name!r}; known exchanges: {known}"

    # ---- exchange symbols --------------------------------------------------------------------

    async def upsert_exchange_symbols(
        self, exchange_id: int, symbols: Iterable[SymbolUpsert]
    ) -> int:
        """Insert or refresh symbols (volume, rank, tier, active); returns how many were given."""
        # Field order of SymbolUpsert is the column order of the INSERT below.
        args = [(exchange_id, *msgspec.structs.astuple(s)) for s in symbols]
        await self.pool.executemany(
            "INSERT INTO exchange_symbols (exchange_id, symbol, base, quote, volume_24h, "
            "volume_rank, tier, is_active, last_volume_update) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now()) "
            "ON CONFLICT (exchange_id, symbol) DO UPDATE SET base = EXCLUDED.base, "
            "quote = EXCLUDED.quote, volume_24h = EXCLUDED.volume_24h, "
            "volume_rank = EXCLUDED.volume_rank, tier = EXCLUDED.tier, "
            "is_active = EXCLUDED.is_active, last_volume_update = now(), updated_at = now()",
            args,
        )
        return len(args)

    async def deactivate_exchange_symbols(
        self, exchange_id: int, *, keep: Iterable[str], tier: int = 1
    ) -> int:
        """Mark active symbols of `tier` not in `keep` inactive (rows stay); returns the count."""
        status = await self.pool.execute(
            "UPDATE exchange_symbols SET is_active = false, updated_at = now() "
            "WHERE exchange_id = $1 AND tier = $2 AND is_active AND NOT (symbol = ANY($3::text[]))",
            exchange_id,
            tier,
            list(keep),
        )
        return _count(status)

    async def list_exchange_symbols(
        self, exchange_id: int, *, tier: int | None = None, active_only: bool = True
    ) -> list[ExchangeSymbolRow]:
        """Symbols of an exchange, best volume rank first (unranked last)."""
        return await self._rows(
            ExchangeSymbolRow,
            "SELECT * FROM exchange_symbols WHERE exchange_id = $1 "
            "AND ($2::smallint IS NULL OR tier = $2) AND (is_active OR NOT $3) "
            "ORDER BY volume_rank NULLS LAST, symbol",
            exchange_id,
            tier,
            active_only,
        )

    # ---- users and their exchange accounts ---------------------------------------------------

    async def create_user(
        self,
        username: str,
        *,
        email: str | None = None,
        display_name: str | None = None,
        role: str = "user",
    ) -> UserRow:
        row = await self._row(
            UserRow,
            "INSERT INTO users (username, email, display_name, role) VALUES ($1, $2, $3, $4) "
            "RETURNING *",
            username,
            email,
            display_name,
            role,
        )
        assert row is not None  # INSERT ... RETURNING always yields the row
        return row

    async def get_user(self, id_or_username: int | str) -> UserRow | None:
        if isinstance(id_or_username, int):
            return await self._row(UserRow, "SELECT * FROM users WHERE id = $1", id_or_username)
        return await self._row(UserRow, "SELECT * FROM users WHERE username = $1", id_or_username)

    async def list_users(self, *, active_only: bool = False) -> list[UserRow]:
        return await self._rows(
            UserRow, "SELECT * FROM users WHERE is_active OR NOT $1 ORDER BY id", active_only
        )

    async def add_user_exchange(
        self,
        user_id: int,
        exchange: int | str,
        *,
        credentials: Mapping[str, Any],
        display_name: str | None = None,
        is_default: bool = False,
    ) -> UserExchangeRow:
        """Register an account on a known exchange; credentials are env-var names or blobs."""
        stored = _check_credentials(credentials)
        venue = await self.get_exchange(exchange)
        async with self.pool.acquire() as conn, conn.transaction():
            if is_default:  # one default per user: the new one replaces the old
                await conn.execute(
                    "UPDATE user_exchanges SET is_default = false, updated_at = now() "
                    "WHERE user_id = $1 AND is_default",
                    user_id,
                )
            row = await conn.fetchrow(
                "INSERT INTO user_exchanges (user_id, exchange_name, exchange_id, display_name, "
                "credentials, is_default) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
                user_id,
                venue.name,
                venue.id,
                display_name,
                stored,
                is_default,
            )
        assert row is not None  # INSERT ... RETURNING always yields the row
        return msgspec.convert(dict(row), UserExchangeRow)

    async def list_user_exchanges(
        self,
        *,
        user_id: int | None = None,
        exchange_id: int | None = None,
        active_only: bool = True,
    ) -> list[UserExchangeRow]:
        return await self._rows(
            UserExchangeRow,
            "SELECT * FROM user_exchanges WHERE ($1::int IS NULL OR user_id = $1) "
            "AND ($2::int IS NULL OR exchange_id = $2) AND (is_active OR NOT $3) ORDER BY id",
            user_id,
            exchange_id,
            active_only,
        )

    # ---- positions ---------------------------------------------------------------------------

    async def upsert_position(
        self, user_exchange_id: int, symbol: str, quantity: Number, value: Number | None = None
    ) -> PositionRow:
        """Record a holding as just synced (insert or update by account and symbol)."""
        row = await self._row(
            PositionRow,
            "INSERT INTO positions (user_exchange_id, symbol, quantity, value) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (user_exchange_id, symbol) DO UPDATE SET "
            "quantity = EXCLUDED.quantity, value = EXCLUDED.value, last_synced_at = now(), "
            "updated_at = now() RETURNING *",
            user_exchange_id,
            symbol,
            _decimal(quantity),
            _decimal(value),
        )
        assert row is not None  # INSERT ... RETURNING always yields the row
        return row

    async def remove_positions_except(self, user_exchange_id: int, keep: Iterable[str]) -> int:
        """Forget holdings of an account that the last sync no longer reported."""
        status = await self.pool.execute(
            "DELETE FROM positions WHERE user_exchange_id = $1 AND NOT (symbol = ANY($2::text[]))",
            user_exchange_id,
            list(keep),
        )
        return _count(status)

    async def list_positions(
        self, *, user_exchange_id: int | None = None, exchange_id: int | None = None
    ) -> list[PositionRow]:
        """Holdings of one account, or of every account on one exchange, or all."""
        return await self._rows(
            PositionRow,
            "SELECT p.* FROM positions AS p "
            "JOIN user_exchanges AS ue ON ue.id = p.user_exchange_id "
            "WHERE ($1::int IS NULL OR p.user_exchange_id = $1) "
            "AND ($2::int IS NULL OR ue.exchange_id = $2) ORDER BY p.user_exchange_id, p.symbol",
            user_exchange_id,
            exchange_id,
        )

    # ---- alert history -----------------------------------------------------------------------

    async def insert_alert(self, alert: Alert) -> bool:
        """Store an alert once: False when its id is already stored (a replay or a duplicate)."""
        details = {
            "signal": alert.signal,
            "histogram": alert.histogram,
            "stage": alert.stage,
            "source_exchange_name": alert.source_exchange_name,
            "context": alert.context,
        }
        try:
            status = await self.pool.execute(
                "INSERT INTO alert_history (alert_id, exchange_id, symbol, timeframe, alert_type, "
                "trigger_label, trigger_value, price, triggered_at, candle_timestamp, details) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
                "ON CONFLICT (alert_id) DO NOTHING",
                alert.id,
                alert.source_exchange_id,
                alert.symbol,
                alert.timeframe,
                alert.alert_type,
                alert.trigger_label,
                alert.trigger_value,
                alert.price,
                datetime.fromtimestamp(alert.triggered_at / 1000, UTC),
                alert.candle_timestamp,
                details,
            )
        except asyncpg.ForeignKeyViolationError:
            raise UnknownExchangeError(
                await self._unknown_exchange(alert.source_exchange_id)
            ) from None
        return _count(status) == 1

    async def recent_alerts(
        self, *, exchange_id: int | None = None, limit: int = 50
    ) -> list[AlertHistoryRow]:
        """Newest first, optionally of one exchange."""
        return await self._rows(
            AlertHistoryRow,
            "SELECT * FROM alert_history WHERE ($1::int IS NULL OR exchange_id = $1) "
            "ORDER BY triggered_at DESC, id DESC LIMIT $2",
            exchange_id,
            limit,
        )
