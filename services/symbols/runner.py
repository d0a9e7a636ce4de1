"""Builds the symbol manager from its settings and runs it as a service body."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from livermore_common.db import Database
from livermore_common.errors import TransientError
from livermore_common.exchanges.base import AdapterOptions
from livermore_common.exchanges.factory import ExchangeAdapterFactory
from livermore_common.lifecycle import ServiceContext

from .commands import RefreshCommands
from .config import SymbolSettings
from .service import RowAdapters, SymbolManager


async def run_symbols(
    ctx: ServiceContext, settings: SymbolSettings, environ: Mapping[str, str]
) -> None:
    db = await ctx.exit_stack.enter_async_context(
        Database(settings.common.database_url, max_size=3)
    )
    options = AdapterOptions(ca_file=settings.exchange_ca_file or None)
    factory = ExchangeAdapterFactory(options=options)
    manager = SymbolManager(
        settings=settings, db=db, redis=ctx.redis, keys=ctx.keys,
        adapter_factory=RowAdapters(factory), environ=environ, instance_id=ctx.instance_id,
    )  # fmt: skip
    for row in await manager.exchanges():
        factory.adapter_class(row.name)  # fail at start when no adapter serves an exchange
    if settings.once:
        served = await manager.exchanges()
        done = {r.exchange for r in await manager.refresh_all()}
        failed = sorted(row.name for row in served if row.name not in done)
        if failed:  # a one-shot run (cron, a deploy step) must report failure by its exit code
            raise TransientError(f"symbol refresh failed for: {', '.join(failed)}")
        return
    if not settings.common.control_secret:
        ctx.log.warning("LIVERMORE_CONTROL_SECRET is not set: refresh-symbols will be refused")
    commands = RefreshCommands(manager, settings.common.control_secret.reveal())
    async with asyncio.TaskGroup() as tg:
        tg.create_task(commands.run(ctx.stop))
        tg.create_task(manager.run_schedule(ctx.stop))
