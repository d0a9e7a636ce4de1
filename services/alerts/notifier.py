"""Optional webhook notifier (Discord-compatible embeds): rate-limited, never blocks the pipeline.

Alerts are queued without waiting; a background task posts them at most `per_minute` a minute and
drops (and counts) what overflows the queue rather than slowing the evaluator down.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp

from livermore_common.logs import get_logger
from livermore_common.messages import Alert

_COLOURS = {"down": 0xE74C3C, "up": 0x2ECC71}
_ATTEMPTS = 3


def embed_for(alert: Alert) -> dict[str, Any]:
    """A Discord webhook body for one alert."""
    falling = alert.trigger_label.startswith("level_-") or alert.trigger_label.endswith(
        "overbought"
    )
    title = f"{alert.symbol} {alert.timeframe} {alert.trigger_label}"
    return {
        "username": "Livermore",
        "embeds": [
            {
                "title": title,
                "description": f"MACD-V {alert.trigger_value:.2f} ({alert.stage}) on "
                f"{alert.source_exchange_name}",
                "color": _COLOURS["down" if falling else "up"],
                "fields": [
                    {"name": "price", "value": f"{alert.price:g}", "inline": True},
                    {"name": "signal", "value": f"{alert.signal or 0:.2f}", "inline": True},
                    {"name": "exchange", "value": alert.source_exchange_name, "inline": True},
                ],
                "footer": {"text": f"alert {alert.id}"},
            }
        ],
    }


class WebhookNotifier:
    def __init__(self, url: str, *, per_minute: int = 25, queue_size: int = 1000) -> None:
        self._url = url
        self._interval = 60.0 / max(1, per_minute)
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(queue_size)
        self.sent = 0
        self.dropped = 0
        self.failed = 0
        self._log = get_logger("alerts.webhook")

    def __call__(self, alert: Alert) -> None:
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            self.dropped += 1

    async def run(self, stop: asyncio.Event) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            next_at = 0.0
            while not stop.is_set():
                alert = await self._next(stop)
                if alert is None:
                    continue
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at = time.monotonic() + self._interval
                await self._post(http, alert)

    async def _next(self, stop: asyncio.Event) -> Alert | None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                return await self._queue.get()
        return None

    async def _post(self, http: aiohttp.ClientSession, alert: Alert) -> None:
        """POST one alert; a 429 is waited out (its Retry-After) and retried a few times."""
        for _ in range(_ATTEMPTS):
            try:
                async with http.post(self._url, json=embed_for(alert)) as response:
                    if response.status == 429:
                        retry = float(response.headers.get("Retry-After", "1") or 1)
                        await asyncio.sleep(min(retry, 30.0))
                        continue
                    if response.status >= 400:
                        break
                    self.sent += 1
                    return
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                # The URL carries the webhook's secret token: log the error type only.
                self._log.warning("webhook post failed", error=type(exc).__name__)
                break
        self.failed += 1
