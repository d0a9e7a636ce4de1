"""`keep_warm`: rehearsals only while idle and only when closes are due or work ran lately, a
script call that reaches Redis, off at 0, survives a failing rehearsal, ends on stop or
cancellation."""

from __future__ import annotations

import asyncio
import time

from livermore_common.cache import CandleCache
from livermore_common.messages import CandleClosed
from livermore_common.redisbus import execute_packed
from livermore_common.warm import closes_due, keep_warm, touch_sorted_sets


async def test_it_rehearses_while_idle_and_pings_redis(redis_client) -> None:
    calls: list[float] = []
    stop = asyncio.Event()
    before = int((await redis_client.info("stats"))["total_commands_processed"])
    task = asyncio.create_task(
        keep_warm(stop, redis_client, period_ms=5, rehearse=lambda: calls.append(1.0))
    )
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.wait_for(task, 1)
    after = int((await redis_client.info("stats"))["total_commands_processed"])
    assert 10 <= len(calls) <= 60  # ~5 ms apart
    assert after - before >= len(calls)  # one PING per rehearsal


async def test_a_period_with_real_work_is_not_rehearsed(redis_client) -> None:
    done = 0
    calls: list[int] = []
    stop = asyncio.Event()
    task = asyncio.create_task(
        keep_warm(
            stop,
            redis_client,
            period_ms=5,
            rehearse=lambda: calls.append(done),
            activity=lambda: done,
            ping=False,
        )
    )
    for _ in range(40):  # busy: work in every period
        done += 1
        await asyncio.sleep(0.002)
    busy = len(calls)
    await asyncio.sleep(0.1)  # idle
    stop.set()
    await asyncio.wait_for(task, 1)
    assert busy <= 3
    assert len(calls) - busy >= 5


async def test_zero_turns_it_off(redis_client) -> None:
    calls: list[int] = []
    await asyncio.wait_for(
        keep_warm(asyncio.Event(), redis_client, period_ms=0, rehearse=lambda: calls.append(1)), 1
    )
    assert calls == []


async def test_a_failing_rehearsal_is_logged_once_and_the_loop_goes_on(redis_client) -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("boom")

    stop = asyncio.Event()
    task = asyncio.create_task(keep_warm(stop, redis_client, period_ms=5, rehearse=broken))
    await asyncio.sleep(0.5)  # the one warning (a rendered traceback) takes a while
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, 1)
    assert len(calls) >= 5


async def test_cancellation_ends_it(redis_client) -> None:
    task = asyncio.create_task(keep_warm(asyncio.Event(), redis_client, period_ms=1))
    await asyncio.sleep(0.05)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=1)
    assert task in done and task.cancelled()


def test_closes_are_due_around_minute_boundaries() -> None:
    minute = 1_800_000_000.0  # a multiple of 60
    assert closes_due(minute) and closes_due(minute + 9.9) and closes_due(minute - 1.5)
    assert (
        not closes_due(minute + 10.0)
        and not closes_due(minute + 30)
        and not closes_due(minute - 2.5)
    )


async def _started_a_minute_ago(redis, *, wall_s: float, work: list[int]):  # type: ignore[no-untyped-def]
    """keep_warm at wall clock `wall_s`, started (its hangover begun) and then a minute passed
    on its monotonic clock; returns (task, stop, rehearsal calls)."""
    calls: list[int] = []
    offset = [0.0]
    stop = asyncio.Event()
    task = asyncio.create_task(
        keep_warm(
            stop,
            redis,
            period_ms=2,
            rehearse=lambda: calls.append(1),
            activity=lambda: work[0],
            ping=False,
            wall=lambda: wall_s,
            monotonic=lambda: time.monotonic() + offset[0],
        )
    )
    await asyncio.sleep(0)  # it starts, with the work's hangover from now
    offset[0] = 60.0  # a minute later: the hangover is long past
    return task, stop, calls


async def test_between_close_windows_and_long_after_work_it_stays_quiet(redis_client) -> None:
    done = [0]
    # Half a minute from any boundary.
    task, stop, calls = await _started_a_minute_ago(redis_client, wall_s=1_800_000_030.0, work=done)
    await asyncio.sleep(0.35)
    quiet = len(calls)
    done[0] += 1  # real work: noticed within a check, then rehearsals for the hangover
    await asyncio.sleep(0.35)
    stop.set()
    await asyncio.wait_for(task, 1)
    assert quiet <= 1  # at most the one period that began within the hangover
    assert len(calls) >= 20


async def test_a_boundary_coming_up_warms_it_without_any_work(redis_client) -> None:
    # A second before a boundary.
    task, stop, calls = await _started_a_minute_ago(redis_client, wall_s=1_800_000_059.0, work=[0])
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(task, 1)
    assert len(calls) >= 20


async def test_the_writers_touch_reads_its_candle_sets_and_changes_nothing(
    redis_client, keyspace
) -> None:
    cache = CandleCache(redis_client, keyspace)
    events = [
        CandleClosed(
            exchange_id=1,
            exchange="coinbase",
            symbol=symbol,
            timeframe="1m",
            timestamp=1_800_000_000_000,
            open=1.0,
            high=2.0,
            low=0.5,
            close=1.5,
            volume=3.0,
        )
        for symbol in ("BTC-USD", "ETH-USD")
    ]
    await cache.announce_closed_many(events)
    keys = cache.candle_keys(events)
    assert keys == [keyspace.candle_key(1, s, "1m") for s in ("BTC-USD", "ETH-USD")]
    assert touch_sorted_sets([]) is None
    mine = await redis_client.keys(f"{keyspace.namespace}*")
    before = {k: await redis_client.dump(k) for k in mine}
    assert await execute_packed(redis_client, [touch_sorted_sets(keys)]) == [1]
    assert {k: await redis_client.dump(k) for k in mine} == before
    assert sorted(await redis_client.keys(f"{keyspace.namespace}*")) == sorted(mine)
