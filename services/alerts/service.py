"""Wiring of the alert evaluator process: stream consumer → evaluator → Redis and Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from livermore_common.db import Database
from livermore_common.lifecycle import ServiceContext
from livermore_common.messages import Alert
from livermore_common.streams import StreamConsumer

from .config import AlertSettings
from .evaluator import AlertEvaluator
from .notifier import WebhookNotifier
from .store import AlertStateStore

GROUP = "alerts"


async def run_alerts(ctx: ServiceContext, settings: AlertSettings) -> None:
    keys = ctx.keys
    recorder = None
    if settings.record_history:
        db = await ctx.exit_stack.enter_async_context(Database(settings.common.database_url))

        async def record(alerts: Sequence[Alert]) -> None:
            for alert in alerts:
                await db.insert_alert(alert)

        recorder = record
    else:

        async def record_nothing(alerts: Sequence[Alert]) -> None:
            return None

        recorder = record_nothing
    notifier = (
        WebhookNotifier(settings.webhook_url.reveal(), per_minute=settings.webhook_per_minute)
        if settings.webhook_url
        else None
    )
    evaluator = AlertEvaluator(
        store=AlertStateStore(ctx.redis, stream=keys.alert_stream),
        keys=keys,
        record=recorder,
        notify=notifier,
        redis=ctx.redis,
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
    ctx.log.info("alert evaluator consuming", stream=keys.indicator_stream, group=GROUP)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(consumer.run(ctx.stop))
        if notifier is not None:
            tg.create_task(notifier.run(ctx.stop))
