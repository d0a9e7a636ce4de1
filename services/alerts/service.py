"""Wiring of the alert evaluator process: indicator stream -> evaluator -> Redis; alert stream ->
history writer -> Postgres."""

from __future__ import annotations

import asyncio
import gc

from livermore_common.db import Database
from livermore_common.lifecycle import ServiceContext
from livermore_common.streams import StreamConsumer
from livermore_common.warm import keep_warm

from .config import AlertSettings
from .evaluator import AlertEvaluator
from .history import HISTORY_GROUP, HistoryWriter
from .notifier import WebhookNotifier
from .store import AlertStateStore

GROUP = "alerts"


async def run_alerts(ctx: ServiceContext, settings: AlertSettings) -> None:
    keys = ctx.keys
    notifier = (
        WebhookNotifier(settings.webhook_url.reveal(), per_minute=settings.webhook_per_minute)
        if settings.webhook_url
        else None
    )
    evaluator = AlertEvaluator(
        store=AlertStateStore(ctx.redis, stream=keys.alert_stream),
        keys=keys,
        notify=notifier,
    )
    consumer = StreamConsumer(
        ctx.redis,
        keys.indicator_stream,
        GROUP,
        ctx.instance_id,
        evaluator.handle,
        batch_size=settings.batch_size,
        block_ms=200,
        dead_letter_stream=keys.dead_letter_stream(keys.indicator_stream),
    )
    history = None
    if settings.record_history:
        db = await ctx.exit_stack.enter_async_context(Database(settings.common.database_url))
        # Its own group on the durable alert stream: alerts published while no writer ran (or
        # published just before a crash) are still unread or pending there, and get inserted.
        history = StreamConsumer(
            ctx.redis,
            keys.alert_stream,
            HISTORY_GROUP,
            ctx.instance_id,
            HistoryWriter(db, stop=ctx.stop).handle,
            batch_size=settings.batch_size,
            block_ms=200,
            dead_letter_stream=keys.dead_letter_stream(keys.alert_stream),
        )
    # As in `livermore indicators`: what exists now lives as long as the process, so frozen, the
    # garbage collector's full collections stop walking it (shorter pauses on the alert path).
    gc.collect()
    gc.freeze()
    ctx.log.info(
        "alert evaluator consuming",
        stream=keys.indicator_stream,
        group=GROUP,
        history_group=HISTORY_GROUP if history else None,
    )
    async with asyncio.TaskGroup() as tg:
        tg.create_task(consumer.run(ctx.stop))
        tg.create_task(
            keep_warm(
                ctx.stop,
                ctx.redis,
                period_ms=settings.common.keep_warm_ms,
                rehearse=evaluator.rehearse,
                touch=evaluator.touch,
                activity=lambda: consumer.stats.processed,
            )
        )
        if history is not None:
            tg.create_task(history.run(ctx.stop))
        if notifier is not None:
            tg.create_task(notifier.run(ctx.stop))
