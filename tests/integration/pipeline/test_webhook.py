"""The optional webhook notifier: Discord-style embeds, bounded queue, never blocking the caller."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from aiohttp import web

from livermore_common.messages import Alert
from services.alerts.notifier import WebhookNotifier
from tests.helpers import eventually


def _alert(i: int) -> Alert:
    return Alert(
        id=f"a{i}",
        source_exchange_id=1,
        source_exchange_name="coinbase",
        symbol="BTC-USD",
        timeframe="5m",
        alert_type="macdv",
        trigger_label="level_-150",
        trigger_value=-160.0 - i,
        signal=-150.0,
        histogram=-10.0,
        stage="oversold",
        price=100.0 + i,
        candle_timestamp=i,
        triggered_at=i + 1,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_alerts_are_posted_as_embeds_and_overflow_is_dropped_not_waited_for() -> None:
    received: list[dict[str, Any]] = []
    first_call = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        if len(received) == 1:
            first_call.set()
            return web.Response(status=429, headers={"Retry-After": "0"})
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    notifier = WebhookNotifier(f"http://127.0.0.1:{port}/hook", per_minute=6000, queue_size=3)
    for i in range(5):
        notifier(_alert(i))  # synchronous and immediate, whatever the webhook does
    assert notifier.dropped == 2
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(stop))
    try:
        await eventually(lambda: notifier.sent >= 3, timeout=10)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        await runner.cleanup()
    embed = received[0]["embeds"][0]
    assert embed["title"] == "BTC-USD 5m level_-150"
    assert "coinbase" in embed["description"]
    # The first post got a 429 and was retried: every queued alert was delivered once.
    assert notifier.sent == 3 and notifier.failed == 0
    assert [r["embeds"][0]["footer"]["text"] for r in received] == [
        "alert a0",
        "alert a0",
        "alert a1",
        "alert a2",
    ]
