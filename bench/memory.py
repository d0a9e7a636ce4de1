"""Benchmark: Redis bytes per stored candle (target <= 100 B), and what would bring it down.

A full sorted set of 1000 closed candles (the default retention), written by the real
`CandleCache.announce_closed_many` from the simulator's Binance market (realistic prices and
volumes), measured with `MEMORY USAGE key SAMPLES 0` / 1000:

1. on the configured Redis as it is (its own `zset-max-listpack-*` settings);
2. on private `redis-server` processes started here (no persistence, a free port, stopped at the
   end) with the default thresholds, then with thresholds that keep a 1000-candle set in the
   compact listpack encoding (a server setting, no code change);
3. for comparison only, a shorter member (a JSON array instead of the public object): this would
   change the public contract (DOMAIN.md §2) and is not what Livermore stores.

On the private servers it also prints what each encoding costs the writer in steady state:
100 full sets, then 20 more closes per set through the same cache, with the Redis time per
candle (`INFO commandstats`, reset first: the server is private). The listpack encoding saves
memory but makes every insert and trim an O(N) walk and move of a ~130 KB listpack.

Everything written goes under a unique namespace and is deleted. `.venv/bin/python bench/memory.py`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `services` (the simulator's market) when run as a script

from _common import machine  # noqa: E402

from livermore_common.cache import CandleCache, candle_member  # noqa: E402
from livermore_common.keys import KeySpace  # noqa: E402
from livermore_common.messages import CandleClosed  # noqa: E402
from services.sim.config import SimConfig  # noqa: E402
from services.sim.formats import fixed8, price8  # noqa: E402
from services.sim.market import MINUTE_MS, Market  # noqa: E402

TARGET = 100.0
COUNT = 1000
START_MS = 1_767_225_600_000
LISTPACK_ALL = {"zset-max-listpack-entries": "1024", "zset-max-listpack-value": "128"}


def candles(symbol_index: int = 0) -> list[CandleClosed]:
    """COUNT closed 1m candles of one simulated Binance symbol (BTCUSDT first)."""
    market = Market("binance", SimConfig(symbols=max(5, symbol_index + 1), start_time_ms=START_MS))
    spec = market.symbols[symbol_index]
    first = START_MS // MINUTE_MS - COUNT
    out = []
    for minute in range(first, first + COUNT):
        bar = market.minute(spec, minute).bar
        if bar is None:  # no trade in that minute (never for the top symbol)
            continue
        d = spec.decimals
        # The floats of the strings the venue sends, as the adapter parses them.
        out.append(
            CandleClosed(
                exchange_id=2,
                exchange="binance",
                symbol=spec.name,
                timeframe="1m",
                timestamp=minute * MINUTE_MS,
                open=float(price8(bar.open, d)),
                high=float(price8(bar.high, d)),
                low=float(price8(bar.low, d)),
                close=float(price8(bar.close, d)),
                volume=float(fixed8(bar.volume)),
            )
        )
    return out


async def measure(redis: aioredis.Redis, events: list[CandleClosed]) -> tuple[float, str]:
    """(bytes per candle, encoding) of a full set written by the cache."""
    keys = KeySpace(f"bench:memory:{uuid.uuid4().hex[:8]}:")
    cache = CandleCache(redis, keys, max_candles=COUNT)
    try:
        await cache.announce_closed_many(events)
        key = keys.candle_key(events[0].exchange_id, events[0].symbol, events[0].timeframe)
        assert await redis.zcard(key) == len(events)
        used = await redis.memory_usage(key, samples=0) or 0
        encoding = await redis.object("encoding", key)
        name = encoding.decode() if isinstance(encoding, bytes) else str(encoding)
        return float(used) / len(events), name
    finally:
        async for name in redis.scan_iter(match=f"{keys.namespace}*", count=1000):
            await redis.unlink(name)


async def measure_compact(redis: aioredis.Redis, events: list[CandleClosed]) -> float:
    """Bytes per candle with `[ts,o,h,l,c,v]` members (comparison only; not the contract)."""
    key = f"bench:memory:{uuid.uuid4().hex[:8]}:compact"
    try:
        mapping = {
            msgspec.json.encode(
                [e.timestamp, e.open, e.high, e.low, e.close, e.volume]
            ): e.timestamp
            for e in events
        }
        await redis.zadd(key, mapping)
        return float(await redis.memory_usage(key, samples=0) or 0) / len(events)
    finally:
        await redis.unlink(key)


async def write_cost(redis: aioredis.Redis, events: list[CandleClosed]) -> tuple[float, float]:
    """(Redis µs per closed candle in the announce script, ZADD µs per call) in steady state:
    100 full sets, then 20 closes per set in 100-candle batches (a private server only)."""
    keys = KeySpace(f"bench:memory:{uuid.uuid4().hex[:8]}:")
    cache = CandleCache(redis, keys, max_candles=COUNT)
    series, extra = 100, 20
    history, fresh = events[: COUNT - extra], events[COUNT - extra :]

    def renamed(e: CandleClosed, n: int) -> CandleClosed:
        return msgspec.structs.replace(e, symbol=f"{e.symbol}{n:03d}")

    try:
        for n in range(series):
            await cache.announce_closed_many(renamed(e, n) for e in history)
        await redis.config_resetstat()
        for e in fresh:
            await cache.announce_closed_many(renamed(e, n) for n in range(series))
        stats = await redis.info("commandstats")
        script = stats.get("cmdstat_evalsha", {}).get("usec", 0) + stats.get(
            "cmdstat_eval", {}
        ).get("usec", 0)
        zadd = float(stats.get("cmdstat_zadd", {}).get("usec_per_call", 0.0))
        return float(script) / (series * len(fresh)), zadd
    finally:
        async for name in redis.scan_iter(match=f"{keys.namespace}*", count=1000):
            await redis.unlink(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def private_redis(config: dict[str, str]) -> Iterator[str | None]:
    """A throwaway redis-server (no persistence) with `config`; None when there is no binary."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = _free_port()
    with tempfile.TemporaryDirectory() as workdir:
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", workdir]
        for name, value in config.items():
            args += [f"--{name}", value]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)


@contextlib.asynccontextmanager
async def client(url: str) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(url)
    try:
        yield redis
    finally:
        await redis.aclose()


def line(label: str, per: float, encoding: str = "") -> str:
    enc = f", encoding {encoding}" if encoding else ""
    return f"{label}: {per:.1f} B per candle{enc}; {TARGET / per:.2f}x target (<= {TARGET:.0f} B)"


async def run(redis_url: str) -> int:
    print(machine(load=False))
    events = candles()
    members = [len(candle_member(e)) for e in events]
    example = candle_member(events[-1]).decode()
    print(
        f"{COUNT} closed 1m candles of simulated {events[0].symbol}; stored member JSON "
        f"{sum(members) / len(members):.1f} B on average (e.g. {example})"
    )
    async with client(redis_url) as redis:
        settings = await redis.config_get("zset-max-listpack-*")
        shown = ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))
        per, encoding = await measure(redis, events)
        print(line(f"configured Redis ({shown})", per, encoding))
    for label, config in (
        ("private redis-server, default thresholds", {}),
        (
            "private redis-server, " + ", ".join(f"{k} {v}" for k, v in LISTPACK_ALL.items()),
            LISTPACK_ALL,
        ),
    ):
        with private_redis(config) as url:
            if url is None:
                print(f"{label}: skipped (no redis-server binary)")
                continue
            async with client(url) as redis:
                per, encoding = await measure(redis, events)
                print(line(label, per, encoding))
                script, zadd = await write_cost(redis, events)
                print(
                    f"  writer cost with full {COUNT}-candle sets: {script:.1f} µs of Redis time "
                    f"per closed candle in the announce script (ZADD {zadd:.1f} µs per call)"
                )
                if config:
                    compact = await measure_compact(redis, events)
                    print(
                        line(
                            "  for comparison, [ts,o,h,l,c,v] members (breaks the contract)",
                            compact,
                        )
                    )
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--redis-url", default=os.environ.get("LIVERMORE_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    return asyncio.run(run(p.parse_args().redis_url))


if __name__ == "__main__":
    sys.exit(main())
