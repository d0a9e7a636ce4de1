"""Two ingestor processes share an exchange's symbols; one is killed with SIGKILL mid-run.

The survivor takes over the dead one's symbols after its lease expires, backfills what was missed,
and the stored candles equal the simulator's with nothing announced twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from services.ingestor.assignment import assign
from tests.helpers import eventually

from .conftest import SECRET, announced, assert_matches_truth, assert_no_duplicates, stored

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT")


def _spawn(instance: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.cli",
            "ingestor",
            "--exchange",
            "binance",
            "--autostart",
            "--symbols",
            ",".join(SYMBOLS),
            "--timeframes",
            "1m",
            "--history",
            "15",
        ],
        env={**env, "LIVERMORE_INSTANCE_ID": instance},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_killed_replica_loses_nothing_and_duplicates_nothing(
    sim,
    pointed_db,
    database_url,
    redis_url,
    namespace,
    redis_client,
    keyspace,
) -> None:
    env = {
        **os.environ,
        "LIVERMORE_REDIS_URL": redis_url,
        "LIVERMORE_DATABASE_URL": database_url,
        "LIVERMORE_NAMESPACE": namespace,
        "LIVERMORE_CONTROL_SECRET": SECRET,
        "LIVERMORE_LOG_FORMAT": "json",
    }
    a, b = _spawn("rep-a", env), _spawn("rep-b", env)
    try:
        members_key = keyspace.ingestor_members_key(2)

        async def both_joined() -> bool:
            return await redis_client.zcard(members_key) == 2

        await eventually(both_joined, timeout=30, interval=0.2)
        mine_b = assign(SYMBOLS, ["rep-a", "rep-b"], "rep-b")
        assert mine_b and len(mine_b) < len(SYMBOLS)  # the work really is divided

        async def live_everywhere() -> bool:
            counts = [len(await stored(redis_client, keyspace, 2, s, "1m")) for s in SYMBOLS]
            return min(counts) >= 18

        await eventually(live_everywhere, timeout=40, interval=0.2)
        os.kill(b.pid, signal.SIGKILL)
        b.wait(10)
        killed_at = {s: len(await stored(redis_client, keyspace, 2, s, "1m")) for s in mine_b}

        async def taken_over() -> bool:
            counts = [len(await stored(redis_client, keyspace, 2, s, "1m")) for s in mine_b]
            return all(c >= killed_at[s] + 12 for c, s in zip(counts, mine_b, strict=True))

        # The lease (6 s) expires, the survivor rebalances and backfills the gap.
        await eventually(taken_over, timeout=60, interval=0.3)
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (a, b):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    assert a.returncode == 0  # SIGTERM drains and exits cleanly
    for symbol in SYMBOLS:
        assert_matches_truth(
            sim, "binance", symbol, "1m", await stored(redis_client, keyspace, 2, symbol, "1m")
        )
    assert_no_duplicates(await announced(redis_client, keyspace))
