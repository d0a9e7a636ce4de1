"""Tier 2 input: users' balances from their exchange accounts, valued in USD, kept in `positions`.

Credentials are resolved from `user_exchanges.credentials` only here and only for the call that
needs them; error texts pass through `scrub` so a venue echoing a key cannot leak it into logs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import msgspec

from livermore_common.config import Secret
from livermore_common.db import Database, UserExchangeRow
from livermore_common.errors import LivermoreError
from livermore_common.exchanges.base import Credentials, ExchangeAdapter
from livermore_common.logs import get_logger
from livermore_common.secrets import CredentialsError, resolve_credentials

from .tiers import (
    DEFAULT_QUOTE_PREFERENCE,
    HeldAsset,
    MarketIndex,
    symbols_to_price,
    total_balances,
    usd_value,
)

_log = get_logger("livermore.symbols")

# Errors a venue call may raise that should skip one account, not stop the refresh.
ACCOUNT_ERRORS = (LivermoreError, OSError, TimeoutError)


class PriceSource(Protocol):
    async def prices(self, symbols: Iterable[str]) -> dict[str, float]:
        """Last known price per symbol (in its quote); symbols without one are left out."""
        ...


class CandlePrices:
    """Last close of recent closed candles per market, cached for one refresh.

    The adapter protocol exposes 24h volumes but not ticker prices, so the latest closed candle
    is the venue's own most recent price available through it (at most one interval old).
    """

    def __init__(
        self,
        adapter: ExchangeAdapter,
        *,
        timeframe: str = "1h",
        lookback_ms: int = 24 * 3_600_000,
        concurrency: int = 4,
    ) -> None:
        self._adapter = adapter
        self._timeframe = timeframe
        self._lookback_ms = lookback_ms
        self._limit = asyncio.Semaphore(concurrency)
        self._cache: dict[str, float | None] = {}
        self._now: int | None = None

    async def prices(self, symbols: Iterable[str]) -> dict[str, float]:
        wanted = sorted(set(symbols) - set(self._cache))
        if wanted:
            if self._now is None:
                self._now = await self._adapter.server_time()
            found = await asyncio.gather(*(self._last_close(s, self._now) for s in wanted))
            self._cache.update(zip(wanted, found, strict=True))
        return {s: p for s in symbols if (p := self._cache.get(s)) is not None}

    async def _last_close(self, symbol: str, now: int) -> float | None:
        async with self._limit:
            try:
                candles = await self._adapter.fetch_candles(
                    symbol, self._timeframe, now - self._lookback_ms, now
                )
            except ACCOUNT_ERRORS as exc:
                _log.warning("no price for symbol", symbol=symbol, error=repr(exc))
                return None
        closes = [c.close for c in candles if c.close > 0]
        return closes[-1] if closes else None


def scrub(text: str, secrets: Iterable[Secret]) -> str:
    """`text` with every secret value replaced by ***."""
    for secret in secrets:
        value = secret.reveal()
        if value:
            text = text.replace(value, "***")
    return text


def adapter_credentials(
    stored: Mapping[str, object], *, key: Secret, environ: Mapping[str, str]
) -> tuple[Credentials, tuple[Secret, ...]]:
    """The adapter's key pair from stored credentials, and every resolved value (for scrubbing)."""
    fields = resolve_credentials(stored, key=key, environ=environ)
    api_key, api_secret = fields.get("api_key"), fields.get("api_secret")
    if api_key is None or api_secret is None:
        missing = [f for f in ("api_key", "api_secret") if f not in fields]
        raise CredentialsError(f"stored credentials lack {', '.join(missing)}")
    return Credentials(api_key.reveal(), api_secret), tuple(fields.values())


class AccountSync(msgspec.Struct, frozen=True, kw_only=True):
    """How one account's sync went (errors are scrubbed of secrets)."""

    user_exchange_id: int
    user_id: int
    ok: bool
    holdings: int = 0
    error: str | None = None


class HoldingsSync:
    """Fetches each account's balances on one venue and records them as positions."""

    def __init__(
        self,
        db: Database,
        *,
        key: Secret,
        environ: Mapping[str, str],
        preference: Sequence[str] = DEFAULT_QUOTE_PREFERENCE,
    ) -> None:
        self._db = db
        self._key = key
        self._environ = environ
        self._preference = tuple(preference)

    async def sync_exchange(
        self, exchange_id: int, adapter: ExchangeAdapter, index: MarketIndex, prices: PriceSource
    ) -> list[AccountSync]:
        accounts = await self._db.list_user_exchanges(exchange_id=exchange_id)
        return [await self.sync_account(a, adapter, index, prices) for a in accounts]

    async def sync_account(
        self,
        account: UserExchangeRow,
        adapter: ExchangeAdapter,
        index: MarketIndex,
        prices: PriceSource,
    ) -> AccountSync:
        """Replace the account's positions with what it holds now; on failure keep the last ones
        (a venue outage must not unsubscribe anyone)."""
        secrets: tuple[Secret, ...] = ()
        try:
            credentials, secrets = adapter_credentials(
                account.credentials, key=self._key, environ=self._environ
            )
            balances = total_balances(await adapter.fetch_balances(credentials))
            known = await prices.prices(symbols_to_price(balances, index, self._preference))
        except ACCOUNT_ERRORS as exc:
            error = scrub(f"{type(exc).__name__}: {exc}", secrets)
            _log.warning("account sync failed", user_exchange_id=account.id, error=error)
            return AccountSync(
                user_exchange_id=account.id, user_id=account.user_id, ok=False, error=error
            )
        for asset, quantity in sorted(balances.items()):
            value = usd_value(asset, quantity, index, known, self._preference)
            await self._db.upsert_position(account.id, asset, quantity, value)
        await self._db.remove_positions_except(account.id, list(balances))
        return AccountSync(
            user_exchange_id=account.id, user_id=account.user_id, ok=True, holdings=len(balances)
        )


async def load_held(db: Database, exchange_id: int) -> list[HeldAsset]:
    """Stored positions on one venue, of active accounts, with their owners."""
    owners = {a.id: a.user_id for a in await db.list_user_exchanges(exchange_id=exchange_id)}
    return [
        HeldAsset(
            user_id=owners[row.user_exchange_id],
            asset=row.symbol,
            quantity=float(row.quantity),
            value_usd=None if row.value is None else float(row.value),
        )
        for row in await db.list_positions(exchange_id=exchange_id)
        if row.user_exchange_id in owners
    ]
