"""Builds an ingestor from its settings: the exchange row, the adapter factory, the service."""

from __future__ import annotations

from livermore_common.db import Database
from livermore_common.exchanges.base import AdapterOptions, ExchangeAdapter, ExchangeInfo
from livermore_common.exchanges.factory import ExchangeAdapterFactory
from livermore_common.keys import KeySpace
from livermore_common.lifecycle import ServiceContext
from livermore_common.models import ExchangeRow

from .config import IngestorSettings
from .service import Ingestor


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


def adapter_options(settings: IngestorSettings) -> AdapterOptions:
    """The adapters' options from the ingestor's settings (the venue CA file, if any)."""
    return AdapterOptions(ca_file=settings.exchange_ca_file or None)


async def run_ingestor(ctx: ServiceContext, settings: IngestorSettings, keys: KeySpace) -> None:
    db = await ctx.exit_stack.enter_async_context(
        Database(settings.common.database_url, max_size=2)
    )
    row = await db.get_exchange(settings.exchange)
    info = info_from_row(row)

    async def load_row(exchange_id: int) -> ExchangeInfo:
        # Re-read at every connect: pointing an exchange elsewhere is a row update.
        return info_from_row(await db.get_exchange(exchange_id))

    factory = ExchangeAdapterFactory(load_row, options=adapter_options(settings))
    factory.adapter_class(info.name)  # fail at start when no adapter serves this exchange

    async def make_adapter() -> ExchangeAdapter:
        return await factory.create(info.id)

    ingestor = Ingestor(
        settings=settings,
        redis=ctx.redis,
        keys=keys,
        info=info,
        adapter_factory=make_adapter,
        instance_id=ctx.instance_id,
    )
    ctx.status = "idle"

    def mirror(state: str) -> None:
        ctx.status = state

    ingestor.status.on_state = mirror
    await ingestor.run(ctx.stop)
