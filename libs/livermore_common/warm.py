"""Keeping a service's hot path warm while it waits for work.

On the virtual machines this runs on, a process that has not touched its memory for a while pays
for it on the next event: after 50 ms idle, code that takes 15 us when busy takes 0.5-0.8 ms, and
after 200 ms, 2 ms (bench/README.md, "where the time goes"); the cost grows with the memory the
event touches, whichever CPU runs it. An indicator worker or alert evaluator is idle most of the
time (closes come in bursts at candle boundaries), so every hop of a close paid it.

`keep_warm` rehearses the path every `period` while the service is idle: the service's own
rehearsal (decode, compute and pack the last work again, on copies, writing nothing) and a PING
on the hot-path connection pool (the socket, the event loop, the reply parser, and Redis's own
command loop). It stays out of the way of real work: a period in which the consumer handled
anything is skipped. At the default 2 ms a rehearsal costs about 1-2% of a core.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import redis.asyncio as aioredis

from livermore_common.logs import get_logger
from livermore_common.redisbus import execute_packed, raise_if_cancelled

DEFAULT_PERIOD_MS = 2.0
_PING = b"*3\r\n$4\r\nEVAL\r\n$8\r\nreturn 1\r\n$1\r\n0\r\n"

Rehearsal = Callable[[], object]  # its result is dropped


async def keep_warm(
    stop: asyncio.Event,
    redis: aioredis.Redis,
    *,
    period_ms: float = DEFAULT_PERIOD_MS,
    rehearse: Rehearsal | None = None,
    activity: Callable[[], int] = lambda: 0,
    ping: bool = True,
) -> None:
    """Until `stop` is set: every `period_ms` in which `activity()` (a counter of work done) did
    not move, run `rehearse()` and PING Redis. `period_ms <= 0` returns at once (off). A failing
    rehearsal is logged once and the loop goes on; a failed PING is left to the real path."""
    if period_ms <= 0:
        return
    period = period_ms / 1000
    log = get_logger("warm")
    seen = activity()
    failed = False
    while True:
        await asyncio.sleep(period)
        # A cancellation a library swallowed (see `raise_if_cancelled`) must still end the loop:
        # a task group waits for this task when the service stops or its session fails.
        raise_if_cancelled()
        if stop.is_set():
            return
        now = activity()
        if now != seen:
            seen = now
            continue
        if rehearse is not None:
            try:
                rehearse()
            except Exception as exc:
                if not failed:
                    failed = True
                    log.warning("hot-path rehearsal failed; going on without it", exc_info=exc)
        if ping:
            # A failure is left to the real path, which reports connection trouble.
            with contextlib.suppress(Exception):
                await execute_packed(redis, [_PING])
