"""Keeping a service's hot path warm while it waits for work.

On the virtual machines this runs on, a process that has not touched its memory for a while pays
for it on the next event: after 50 ms idle, code that takes 15 us when busy takes 0.6-0.8 ms, and
after 200 ms, 2-2.5 ms (bench/README.md, "where the time goes"); the cost grows with the memory
the event touches, whichever CPU runs it. The ingestor's writer, the indicator worker and the
alert evaluator are idle most of the time (closes come in bursts at candle boundaries), so every
hop of a close paid it.

`keep_warm` rehearses the path every `period` while the service is idle: the service's own
rehearsal (decode, compute and pack the last work again, on copies, writing nothing) and one
read-only script call on the hot-path connections: it reads the keys the last work wrote
(`touch_hashes`, `touch_sorted_sets`), or just returns, so the socket, the event loop, the reply
parser, Redis's command loop and Lua, and those keys' memory in Redis stay warm. A period in
which real work ran is skipped.

It does so only when closes are due or coming: every timeframe is a whole number of minutes, so
closes cluster just after minute boundaries (a few seconds later for venues that close candles
from trades). The rehearsals run from `LEAD_S` before each boundary (local wall clock) to
`TRAIL_S` after it, and for `HANGOVER_S` after any real work (a fast simulator's clock, a
backlog); otherwise the loop only looks every `IDLE_CHECK_S`. At the default 2 ms period a
rehearsing process uses ~5% of a core (a timer wake-up alone costs ~0.1 ms on such a VM), so
~1% on average over a quiet minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

import redis.asyncio as aioredis

from livermore_common.logs import get_logger
from livermore_common.redisbus import execute_packed, pack_command, raise_if_cancelled

DEFAULT_PERIOD_MS = 2.0
LEAD_S = 2.0
TRAIL_S = 10.0
HANGOVER_S = 10.0
IDLE_CHECK_S = 0.1
BOUNDARY_S = 60.0
_PING = b"*3\r\n$4\r\nEVAL\r\n$8\r\nreturn 1\r\n$1\r\n0\r\n"
# Read-only: what the commit scripts read and write first, per key.
_TOUCH_HASHES = "for _, k in ipairs(KEYS) do redis.call('HMGET', k, 'ts', 'state') end return 1"
_TOUCH_SORTED_SETS = "for _, k in ipairs(KEYS) do redis.call('ZRANGE', k, -1, -1) end return 1"
# Keys a touch reads at most (the newest work's).
TOUCHED_KEYS = 32

Rehearsal = Callable[[], object]  # its result is dropped
Touch = Callable[[], bytes | None]  # a packed read-only call, or None for the plain one


def touch_hashes(keys: Sequence[str]) -> bytes | None:
    """A read-only call reading the `ts` and `state` fields of up to `TOUCHED_KEYS` state
    hashes (the compare-and-set stores' keys), None when there are none."""
    keys = keys[:TOUCHED_KEYS]
    return pack_command("EVAL", _TOUCH_HASHES, len(keys), *keys) if keys else None


def touch_sorted_sets(keys: Sequence[str]) -> bytes | None:
    """A read-only call reading the newest member of up to `TOUCHED_KEYS` candle sets, None
    when there are none."""
    keys = keys[:TOUCHED_KEYS]
    return pack_command("EVAL", _TOUCH_SORTED_SETS, len(keys), *keys) if keys else None


def closes_due(wall_s: float, *, lead_s: float = LEAD_S, trail_s: float = TRAIL_S) -> bool:
    """Whether `wall_s` (Unix seconds) is within `lead_s` before or `trail_s` after a minute
    boundary, when candle closes arrive."""
    phase = wall_s % BOUNDARY_S
    return phase >= BOUNDARY_S - lead_s or phase < trail_s


async def keep_warm(
    stop: asyncio.Event,
    redis: aioredis.Redis,
    *,
    period_ms: float = DEFAULT_PERIOD_MS,
    rehearse: Rehearsal | None = None,
    activity: Callable[[], int] = lambda: 0,
    ping: bool = True,
    touch: Touch | None = None,
    wall: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    """Until `stop` is set: every `period_ms` in which `activity()` (a counter of work done) did
    not move, and closes are due (`closes_due`) or work ran in the last `HANGOVER_S`, run
    `rehearse()` and the script call (`touch()`, or a plain `return 1`).
    `period_ms <= 0` returns at once (off). A failing rehearsal is logged once and the loop goes
    on; a failed call is left to the real path."""
    if period_ms <= 0:
        return
    period = period_ms / 1000
    log = get_logger("warm")
    seen = activity()
    last_work = monotonic()
    failed = False
    while True:
        wanted = closes_due(wall()) or monotonic() - last_work < HANGOVER_S
        await asyncio.sleep(period if wanted else IDLE_CHECK_S)
        # A cancellation a library swallowed (see `raise_if_cancelled`) must still end the loop:
        # a task group waits for this task when the service stops or its session fails.
        raise_if_cancelled()
        if stop.is_set():
            return
        now = activity()
        if now != seen:
            seen, last_work = now, monotonic()
            continue
        if not wanted:
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
                call = touch() if touch is not None else None
                await execute_packed(redis, [call or _PING])
