"""Benchmark: MacdVState.update throughput (closed candles/s, one process), machine noted."""

from __future__ import annotations

import math
import os
import platform
import random
import sys
import time

from livermore_common.indicators.macdv import MacdVState
from livermore_common.messages import Candle

STEP = 60_000
COUNT = 200_000


def candles(count: int, seed: int = 1) -> list[Candle]:
    rng = random.Random(seed)
    price = 100.0
    out = []
    for i in range(count):
        open_ = price
        price *= math.exp(rng.gauss(0, 0.01))
        high, low = max(open_, price) * 1.002, min(open_, price) * 0.998
        out.append(
            Candle(timestamp=i * STEP, open=open_, high=high, low=low, close=price, volume=1.0)
        )
    return out


def run_updates(data: list[Candle]) -> float:
    state = MacdVState(interval_ms=STEP)
    update = state.update
    start = time.perf_counter()
    for candle in data:
        update(candle)
    return len(data) / (time.perf_counter() - start)


def main() -> int:
    data = candles(COUNT)
    machine = f"{platform.platform()}, {platform.processor() or platform.machine()}"
    print(f"machine: {machine}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    best = max(run_updates(data) for _ in range(3))
    print(f"MacdVState.update: {best:,.0f} updates/s ({1e6 / best:.2f} us each)")
    rt = max(run_with_state_round_trip(data[: COUNT // 2]) for _ in range(3))
    print(f"decode state + update + encode state: {rt:,.0f} updates/s ({1e6 / rt:.2f} us each)")
    full = MacdVState(interval_ms=STEP)
    full.feed(data[:100])
    print(f"state size: {len(full.to_bytes())} bytes (msgpack)")
    print("target: >= 20,000 closed candles/s per worker process, Redis I/O included")
    return 0


def run_with_state_round_trip(data: list[Candle]) -> float:
    """What a worker does per close: decode the state, update, encode it (minus Redis I/O)."""
    blob = MacdVState(interval_ms=STEP).to_bytes()
    start = time.perf_counter()
    for candle in data:
        state = MacdVState.from_bytes(blob)
        state.update(candle)
        blob = state.to_bytes()
    return len(data) / (time.perf_counter() - start)


if __name__ == "__main__":
    sys.exit(main())
