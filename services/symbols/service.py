"""The symbol-tier manager: refreshes each exchange's tiers on a schedule (and on demand, see
`commands.py`).

    refresh(exchange)
      adapter.top_symbols(all)  → Tier 1 (top N) upserted into exchange_symbols, dropped ones
                                  deactivated (rows stay)
      accounts on the exchange  → balances → positions (HoldingsSync)
      positions ≥ threshold     → Tier 2 (held, not Tier 1) upserted with tier 2
      merge                     → SymbolList at keys.symbol_list_key(ex); written and published on
                                  keys.symbols_changed_channel(ex) only when it changed
Nothing here deletes candle data: a symbol leaving a tier stops being fed, its shared keys stay and
user overflow keys expire by their TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import asyncpg
import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from livermore_common import messages
from livermore_common.db import Database, ExchangeRow, SymbolUpsert
from livermore_common.errors import LivermoreError, TransientError
from livermore_common.exchanges.base import ExchangeAdapter, ExchangeInfo, SymbolVolume
from livermore_common.exchanges.factory import ExchangeAdapterFactory
from livermore_common.keys import KeySpace
from livermore_common.logs import get_logger
from livermore_common.messages import SymbolList

from .config import SymbolSettings
from .holdings import AccountSync, CandlePrices, HoldingsSync, load_held
from .tiers import MarketIndex, merge, rank_map, rank_tier1, same_symbols, tier2_holders, top_n

# `top_symbols` limit that means "every market": the universe names held assets too.
UNIVERSE_LIMIT = 1_000_000

# What may fail a refresh without being a bug: it is logged (or answered) and retried later.
REFRESH_ERRORS = (LivermoreError, OSError, TimeoutError, asyncpg.PostgresError, RedisError)

AdapterFactory = Callable[[ExchangeRow], Awaitable[ExchangeAdapter]]


def now_ms() -> int:
    return int(time.time() * 1000)


def info_from_row(row: ExchangeRow) -> ExchangeInfo:
    """The adapter's view of an `exchanges` row."""
    return ExchangeInfo(
        id=row.id,
        name=row.name,
        display_name=row.display_name,
        ws_url=row.ws_url,
        rest_url=row.rest_url,
        supported_timeframes=tuple(row.supported_timeframes),
        api_limits=dict(row.api_limits),
    )


class RowAdapters:
    """Makes an adapter from a row already read (the manager re-reads rows every refresh)."""

    def __init__(self, factory: ExchangeAdapterFactory | None = None) -> None:
        self._factory = factory or ExchangeAdapterFactory()

    async def __call__(self, row: ExchangeRow) -> ExchangeAdapter:
        return self._factory.create_from_info(info_from_row(row))


class RefreshResult(msgspec.Struct, frozen=True, kw_only=True):
    exchange_id: int
    exchange: str
    tier1: int
    tier2: int
    deactivated: int
    accounts: tuple[AccountSync, ...] = ()
    changed: bool = False


class SymbolManager:
    """Keeps `exchange_symbols`, `positions` and the merged lists of its exchanges current."""

    def __init__(
        self,
        *,
        settings: SymbolSettings,
        db: Database,
        redis: aioredis.Redis,
        keys: KeySpace,
        adapter_factory: AdapterFactory,
        environ: Mapping[str, str],
        instance_id: str = "symbols",
    ) -> None:
        self.settings = settings
        self._db = db
        self.redis = redis
        self.keys = keys
        self._make_adapter = adapter_factory
        self._holdings = HoldingsSync(
            db, key=settings.secrets_key, environ=environ, preference=settings.quote_preference
        )
        self.instance_id = instance_id
        self._locks: dict[int, asyncio.Lock] = {}
        # Failed scheduled refreshes per exchange name since start (for status and tests).
        self.failures: dict[str, int] = {}
        self._log = get_logger("livermore.symbols", instance=instance_id)

    async def exchanges(self) -> list[ExchangeRow]:
        """The rows served, re-read each time (endpoints may have been repointed)."""
        if self.settings.exchanges:
            return [await self._db.get_exchange(name) for name in self.settings.exchanges]
        return await self._db.list_exchanges(active_only=True)

    async def refresh(self, exchange: ExchangeRow) -> RefreshResult:
        """One full refresh of one exchange; concurrent calls for it run one after another."""
        async with self._locks.setdefault(exchange.id, asyncio.Lock()):
            adapter = await self._make_adapter(exchange)
            try:
                universe = await adapter.top_symbols(UNIVERSE_LIMIT)
                if not universe:
                    # An empty answer is an outage, not a market with nothing in it: keep state.
                    raise TransientError(f"{exchange.name} listed no markets; tiers kept")
                index = MarketIndex(universe)
                prices = CandlePrices(adapter)
                synced = await self._holdings.sync_exchange(exchange.id, adapter, index, prices)
            finally:
                await adapter.aclose()
            return await self._apply(exchange, universe, index, tuple(synced))

    async def _apply(
        self,
        exchange: ExchangeRow,
        universe: Sequence[SymbolVolume],
        index: MarketIndex,
        synced: tuple[AccountSync, ...],
    ) -> RefreshResult:
        s = self.settings
        ranked = rank_tier1(universe, quotes=s.tier1_quotes, one_per_base=s.one_per_base)
        tier1 = top_n(ranked, s.top_for(exchange.name))
        ranks = rank_map(ranked)
        held = await load_held(self._db, exchange.id)
        holders = tier2_holders(
            held, index, min_value_usd=s.min_value_usd, preference=s.quote_preference
        )
        merged = merge(exchange.id, tier1, holders, ranks=ranks, updated_at=now_ms())
        deactivated = await self._store(exchange.id, merged, index)
        changed = await self._publish(merged)
        result = RefreshResult(
            exchange_id=exchange.id,
            exchange=exchange.name,
            tier1=len(tier1),
            tier2=sum(1 for e in merged.symbols if e.tier == 2),
            deactivated=deactivated,
            accounts=synced,
            changed=changed,
        )
        self._log.info(
            "symbols refreshed", exchange=exchange.name, tier1=result.tier1, tier2=result.tier2,
            deactivated=deactivated, changed=changed,
            accounts_failed=sum(1 for a in synced if not a.ok),
        )  # fmt: skip
        return result

    async def _store(self, exchange_id: int, merged: SymbolList, index: MarketIndex) -> int:
        """Upsert every listed symbol with its tier; deactivate the rest (rows are kept)."""
        rows = []
        for entry in merged.symbols:
            market = index.get(entry.symbol)
            assert market is not None  # merge only lists symbols formed from this index
            rows.append(
                SymbolUpsert(
                    symbol=entry.symbol, base=market.base, quote=market.quote,
                    volume_24h=market.volume_24h, volume_rank=entry.volume_rank, tier=entry.tier,
                )
            )  # fmt: skip
        await self._db.upsert_exchange_symbols(exchange_id, rows)
        deactivated = 0
        for tier in (1, 2):
            keep = [e.symbol for e in merged.symbols if e.tier == tier]
            deactivated += await self._db.deactivate_exchange_symbols(
                exchange_id, keep=keep, tier=tier
            )
        return deactivated

    async def _publish(self, merged: SymbolList) -> bool:
        """Write and announce the list if what ingestors act on changed; True when it did."""
        key = self.keys.symbol_list_key(merged.exchange_id)
        old: SymbolList | None = None
        raw = await self.redis.get(key)
        if raw:
            with contextlib.suppress(msgspec.MsgspecError):
                old = messages.decode(raw, SymbolList)
        if same_symbols(old, merged):
            return False
        payload = messages.encode(merged)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(key, payload)
            pipe.publish(self.keys.symbols_changed_channel(merged.exchange_id), payload)
            await pipe.execute()
        return True

    # ---- schedule ----------------------------------------------------------------------------

    async def refresh_all(self) -> list[RefreshResult]:
        """Refresh every served exchange once; a failing one does not stop the others."""
        results = []
        for exchange in await self.exchanges():
            result = await self._refresh_logged(exchange)
            if result is not None:
                results.append(result)
        return results

    async def _refresh_logged(self, exchange: ExchangeRow) -> RefreshResult | None:
        try:
            return await self.refresh(exchange)
        except REFRESH_ERRORS as exc:  # this venue skips a round; the others go on
            self.failures[exchange.name] = self.failures.get(exchange.name, 0) + 1
            self._log.warning("refresh failed", exchange=exchange.name, error=describe_error(exc))
            return None

    async def run_schedule(self, stop: asyncio.Event) -> None:
        """Refresh each exchange every interval (sooner after a failure) until `stop`."""
        due: dict[int, float] = {}
        while not stop.is_set():
            now = time.monotonic()
            for exchange in await self.exchanges():
                if due.get(exchange.id, 0.0) <= now:
                    ok = await self._refresh_logged(exchange) is not None
                    wait = self.settings.interval_s if ok else self.settings.retry_s
                    due[exchange.id] = time.monotonic() + wait
            next_due = min(due.values(), default=time.monotonic() + self.settings.retry_s)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.05, next_due - time.monotonic())):
                    await stop.wait()


def describe_error(exc: BaseException) -> str:
    # Type and message only: our errors never carry secrets, and account errors are scrubbed.
    return f"{type(exc).__name__}: {exc}"
