"""Two indicator worker processes; one is killed with SIGKILL mid-stream. Nothing is lost or
published twice, and every value equals the from-scratch computation."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys

from livermore_common.cache import CandleCache
from livermore_common.indicators import macdv_series
from livermore_common.messages import IndicatorUpdate
from tests.helpers import eventually

from .conftest import MIN, closed, wave_candles
from .test_pipeline import stream_values

SERIES = 40
BARS = 120


def _worker(env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.cli",
            "indicators",
            "--batch-size",
            "20",
            "--claim-idle-ms",
            "1500",
        ],
        env={**env, "LIVERMORE_INSTANCE_ID": name},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_kill_one_of_two_workers_loses_and_duplicates_nothing(
    redis_url,
    namespace,
    redis_client,
    keyspace,
) -> None:
    cache = CandleCache(redis_client, keyspace)
    series = {f"S{i:02d}-USD": wave_candles(BARS, phase=i / 7) for i in range(SERIES)}
    # Interleave the series bar by bar, as closes arrive live.
    events = [closed(series[s][i], symbol=s) for i in range(BARS) for s in series]
    await cache.announce_closed_many(events)
    env = {
        **os.environ,
        "LIVERMORE_REDIS_URL": redis_url,
        "LIVERMORE_NAMESPACE": namespace,
        "LIVERMORE_LOG_FORMAT": "json",
    }
    a, b = _worker(env, "crash-a"), _worker(env, "crash-b")
    try:

        async def some_progress() -> bool:
            return await redis_client.xlen(keyspace.indicator_stream) > 300

        await eventually(some_progress, timeout=30, interval=0.05)

        async def frozen_holding_entries() -> bool:
            # Freeze the worker, then look: kill it only while it holds unacknowledged entries,
            # so the test always proves the take-over (a running worker may be between batches).
            os.kill(b.pid, signal.SIGSTOP)
            held = await redis_client.xpending_range(
                keyspace.candle_closed_stream, "indicators", "-", "+", 10, consumername="crash-b"
            )
            if not held:
                os.kill(b.pid, signal.SIGCONT)
            return bool(held)

        await eventually(frozen_holding_entries, timeout=30, interval=0.01)
        os.kill(b.pid, signal.SIGKILL)
        b.wait(10)
        expected_count = SERIES * (BARS - 25)

        async def all_done() -> bool:
            return await redis_client.xlen(keyspace.indicator_stream) >= expected_count

        await eventually(all_done, timeout=60, interval=0.2)
        await eventually(lambda: _no_pending(redis_client, keyspace), timeout=20, interval=0.2)
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (a, b):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    assert a.returncode == 0
    got = await stream_values(redis_client, keyspace.indicator_stream, IndicatorUpdate)
    keys = [(g.symbol, g.timestamp) for g in got]
    assert len(keys) == len(set(keys)) == expected_count, "an update was lost or duplicated"
    for symbol, candles in series.items():
        points = {p.timestamp: p for p in macdv_series(candles, MIN) if p.macd_v is not None}
        mine = [g for g in got if g.symbol == symbol]
        assert sorted(g.timestamp for g in mine) == sorted(points)
        for g in mine:
            assert math.isclose(g.macd_v, points[g.timestamp].macd_v, abs_tol=1e-6)
            assert math.isclose(g.signal or 0.0, points[g.timestamp].signal or 0.0, abs_tol=1e-6)


async def _no_pending(redis_client, keyspace) -> bool:  # type: ignore[no-untyped-def]
    info = await redis_client.xpending(keyspace.candle_closed_stream, "indicators")
    return info["pending"] == 0
