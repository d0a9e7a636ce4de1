"""Backfill: which closed candles to fetch by REST for a series, and a progress line."""

from __future__ import annotations

import time

from livermore_common.logs import get_logger
from livermore_common.timeframes import bucket_start, interval_ms


def backfill_window(
    *, latest_stored: int | None, now_ms: int, timeframe: str, history: int
) -> tuple[int, int] | None:
    """[start, end) of the closed buckets to fetch, or None when nothing is missing.

    `end` is the start of the bucket forming at `now_ms` (it is not closed yet). With nothing
    stored, the last `history` closed buckets are fetched; otherwise everything after the newest
    stored one (bounded by the same history, since older buckets would be trimmed anyway).
    """
    step = interval_ms(timeframe)
    end = bucket_start(now_ms, timeframe)
    floor = end - history * step
    start = floor if latest_stored is None else max(latest_stored + step, floor)
    return (start, end) if start < end else None


class Progress:
    """Logs `backfill n/total series, m candles` at most every `every_s` seconds, and at the end."""

    def __init__(self, total: int, *, label: str, every_s: float = 2.0) -> None:
        self.total = total
        self.done = 0
        self.candles = 0
        self._label = label
        self._every = every_s
        self._last = time.monotonic()
        self._started = self._last
        self._log = get_logger("backfill")

    def step(self, candles: int) -> None:
        self.done += 1
        self.candles += candles
        now = time.monotonic()
        if self.done == self.total or now - self._last >= self._every:
            self._last = now
            self._log.info(
                f"{self._label}: {self.done}/{self.total} series, {self.candles} candles",
                elapsed_s=round(now - self._started, 1),
            )
