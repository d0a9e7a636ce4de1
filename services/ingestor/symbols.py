"""Where an ingestor's symbols come from: the command line, the symbol manager, or a default."""

from __future__ import annotations

import msgspec
import redis.asyncio as aioredis

from livermore_common import messages
from livermore_common.exchanges.base import ExchangeAdapter
from livermore_common.keys import KeySpace
from livermore_common.messages import SymbolEntry, SymbolList


async def resolve_symbols(
    *,
    redis: aioredis.Redis,
    keys: KeySpace,
    adapter: ExchangeAdapter,
    exchange_id: int,
    explicit: tuple[str, ...],
    default_count: int,
) -> tuple[tuple[SymbolEntry, ...], str]:
    """The symbols to watch and where they came from.

    Explicit `--symbols` win; otherwise the symbol manager's merged list; otherwise (no manager has
    run yet) the top `default_count` symbols by 24h quote volume from the exchange's REST API.
    """
    if explicit:
        return tuple(SymbolEntry(symbol=s) for s in explicit), "command line"
    raw = await redis.get(keys.symbol_list_key(exchange_id))
    if raw:
        try:
            merged = messages.decode(raw, SymbolList)
            return merged.symbols, "symbol manager"
        except msgspec.MsgspecError:
            pass  # a corrupt list is ignored in favour of the REST default
    top = await adapter.top_symbols(default_count)
    return tuple(
        SymbolEntry(symbol=t.symbol, volume_rank=i + 1) for i, t in enumerate(top)
    ), f"top {default_count} by 24h quote volume"
