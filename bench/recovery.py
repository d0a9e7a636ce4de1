"""Benchmark: start-up backfill against the rate-limit floor, and recovery after feed faults.

Targets (ARCHITECTURE.md "Performance targets"):

- start-up backfill within 1.25x the exchange rate-limit floor for the symbols and timeframes
  requested;
- reconnect: a stall detected within 3x the venue's expected message interval, and the stored
  candles gap-free again within 10 s.

Everything runs as it would in a deployment: the simulator (`python -m services.sim`) and the
ingestor (`python -m services.cli ingestor --exchange X --autostart ...`) in their own processes,
a private Postgres database migrated and pointed at the simulator (`--point-db`), a private
Redis namespace. This process only watches: lifecycle events on `channel:control:responses`, the
ingestor's own progress line, the stored sets in Redis, and the simulator's ground truth
(`/_sim/truth`), which every figure is checked against (values, no gaps, no duplicates).

1. Start-up backfill. The simulator runs at real speed with Coinbase's public REST limit enforced
   (10 requests/s, 429 beyond). The floor is the number of REST pages the request needs divided
   by the rate the venue allows (Coinbase: pages of <= 350 candles at 10/s; Binance: pages of
   <= 1000 at weight 2 out of 6000 per minute, so a request this size fits one minute's budget
   and its floor is the round trips, not the limit). Timed from the ingestor's
   `exchange:connecting` event to its `backfill ... N/N series` line; then every stored set is
   compared with the truth.
2. Reconnect. The simulator runs 60x faster than real time (a 1m candle closes every second), so
   an outage of a few seconds misses several candles. For each fault (Coinbase stall, Binance
   dropped connections, Binance `serverShutdown`): detection = fault injected -> the ingestor's
   `exchange:disconnected` event; gap-free = detection -> the moment every series again holds
   every candle the truth has closed up to 30 s (sim time, 0.5 s real) before its clock.

    .venv/bin/python bench/recovery.py [--symbols 30] [--history 300]
        [--reconnect-symbols 10] [--reconnect-speed 60]

At 60x, every REST round of a repair lets more minutes close: with 40 Coinbase series a repair
chases the clock (13.5 s measured) where at real speed it would finish within one minute's
close. At lower speeds the gap-free figure only counts buckets closed 30 s (sim) before the
check, so outages inside one minute look instant: read both with that in mind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import delete_namespace, machine, private_database  # noqa: E402

from livermore_common import messages  # noqa: E402
from livermore_common.keys import KeySpace  # noqa: E402
from livermore_common.messages import Candle, CandleClosed, LifecycleEvent  # noqa: E402
from livermore_common.timeframes import interval_ms  # noqa: E402

EXCHANGE_IDS = {"coinbase": 1, "binance": 2}
# Published limits (DOMAIN.md §3) and page sizes (DOMAIN.md §4).
COINBASE_RPS, COINBASE_PAGE = 10.0, 350
BINANCE_WEIGHT_PER_MIN, BINANCE_PAGE, BINANCE_KLINES_WEIGHT = 6000, 1000, 2
# The adapters' expected message interval (stall = 3x of it): Coinbase heartbeats every second.
EXPECTED_INTERVAL_S = {"coinbase": 1.0, "binance": 20.0}
BACKFILL_TARGET = 1.25
DETECT_FACTOR = 3.0
GAP_FREE_TARGET_S = 10.0
_PROGRESS = re.compile(r"backfill (\w+): (\d+)/(\d+) series, (\d+) candles")


# ---- processes ----------------------------------------------------------------------------------


async def _stop(proc: asyncio.subprocess.Process, grace: float = 15.0) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            proc.kill()
            await proc.wait()


class Truth(msgspec.Struct):
    candles: list[Candle]


@dataclass
class Sim:
    urls: dict[str, str]
    symbols: dict[str, list[str]]
    http: aiohttp.ClientSession

    async def now_ms(self) -> int:
        async with self.http.get(self.urls["coinbase"] + "/_sim/status") as resp:
            return int((await resp.json())["now_ms"])

    async def fault(self, body: dict[str, Any]) -> None:
        async with self.http.post(self.urls["coinbase"] + "/_sim/faults", json=body) as resp:
            if resp.status != 200:
                raise RuntimeError(f"simulator refused fault {body}: {await resp.text()}")

    async def truth(
        self, exchange: str, symbol: str, timeframe: str, start: int, end: int
    ) -> list[Candle]:
        params = {
            "exchange": exchange,
            "symbol": symbol,
            "timeframe": timeframe,
            "start": str(start),
            "end": str(end),
            "expected": "1",
        }
        async with self.http.get(self.urls["coinbase"] + "/_sim/truth", params=params) as resp:
            if resp.status != 200:
                raise RuntimeError(f"simulator truth: {await resp.text()}")
            return msgspec.json.decode(await resp.read(), type=Truth).candles


@contextlib.asynccontextmanager
async def simulator(
    database_url: str, *, symbols: int, speed: float, history_minutes: int
) -> AsyncIterator[Sim]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.sim",
        "--symbols",
        str(symbols),
        "--speed",
        str(speed),
        "--history-minutes",
        str(history_minutes),
        "--coinbase-public-rps",
        str(COINBASE_RPS),
        "--point-db",
        database_url,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
        if not line.startswith("sim ready"):
            raise RuntimeError(f"simulator did not start: {line!r}")
        urls = dict(part.split("=", 1) for part in line.split()[2:])
        async with aiohttp.ClientSession() as http:
            async with http.get(urls["coinbase"] + "/_sim/status") as resp:
                names = (await resp.json())["symbols"]
            yield Sim(urls, names, http)
    finally:
        await _stop(proc)


@dataclass
class Watch:
    """Lifecycle events of one instance and the ingestor's progress lines, with arrival times."""

    events: list[tuple[float, LifecycleEvent]] = field(default_factory=list)
    progress: list[tuple[float, int, int, int]] = field(default_factory=list)

    def first(self, event: str, after: float = 0.0) -> float | None:
        for t, e in self.events:
            if e.event == event and t >= after:
                return t
        return None


@contextlib.asynccontextmanager
async def ingestor(
    redis: aioredis.Redis,
    keys: KeySpace,
    env: dict[str, str],
    exchange: str,
    symbols: list[str],
    timeframes: list[str],
    history: int,
) -> AsyncIterator[Watch]:
    """`livermore ingestor --autostart` in its own process, watched from here."""
    watch = Watch()
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.control_responses_channel)

    async def listen() -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None:
                continue
            with contextlib.suppress(msgspec.MsgspecError):
                decoded = messages.decode_response(message["data"])
                if isinstance(decoded, LifecycleEvent):
                    watch.events.append((time.perf_counter(), decoded))

    listener = asyncio.create_task(listen())
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "ingestor",
        "--exchange",
        exchange,
        "--autostart",
        "--symbols",
        ",".join(symbols),
        "--timeframes",
        ",".join(timeframes),
        "--history",
        str(history),
        cwd=ROOT,
        env={**env, "LIVERMORE_INSTANCE_ID": f"bench-{exchange}", "LIVERMORE_LOG_FORMAT": "json"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )

    async def read_logs() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            found = _PROGRESS.search(raw.decode(errors="replace"))
            if found:
                done, total, candles = (int(found.group(i)) for i in (2, 3, 4))
                watch.progress.append((time.perf_counter(), done, total, candles))

    reader = asyncio.create_task(read_logs())
    try:
        yield watch
    finally:
        await _stop(proc)
        for task in (listener, reader):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def wait_for(check: Any, timeout: float, what: str, every: float = 0.05) -> float:
    """Poll `check()` until true; returns the time (perf_counter) it first held."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if await check():
            return time.perf_counter()
        await asyncio.sleep(every)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


async def stored(
    redis: aioredis.Redis, keys: KeySpace, exchange: str, symbol: str, tf: str, start: int = 0
) -> list[Candle]:
    key = keys.candle_key(EXCHANGE_IDS[exchange], symbol, tf)
    raw: Any = await redis.zrangebyscore(key, start, "+inf")
    return [messages.decode(m, Candle) for m in raw]


def same(a: Candle, b: Candle) -> bool:
    return a.timestamp == b.timestamp and all(
        math.isclose(getattr(a, f), getattr(b, f), rel_tol=1e-9, abs_tol=1e-12)
        for f in ("open", "high", "low", "close", "volume")
    )


async def announced_twice(redis: aioredis.Redis, keys: KeySpace) -> int:
    seen: set[tuple[int, str, str, int]] = set()
    twice = 0
    entries: Any = await redis.xrange(keys.candle_closed_stream)
    for _, fields in entries:
        e = messages.decode(fields[b"data"], CandleClosed)
        key = (e.exchange_id, e.symbol, e.timeframe, e.timestamp)
        twice += key in seen
        seen.add(key)
    return twice


# ---- 1. start-up backfill -----------------------------------------------------------------------


def floor_seconds(exchange: str, pages: int) -> tuple[float, str]:
    if exchange == "coinbase":
        return pages / COINBASE_RPS, f"{pages} pages at {COINBASE_RPS:.0f} requests/s"
    weight = pages * BINANCE_KLINES_WEIGHT
    over = max(0, weight - BINANCE_WEIGHT_PER_MIN)
    seconds = over / (BINANCE_WEIGHT_PER_MIN / 60)
    return seconds, f"{pages} pages = weight {weight} of {BINANCE_WEIGHT_PER_MIN}/min"


async def startup_backfill(
    sim: Sim,
    redis: aioredis.Redis,
    env: dict[str, str],
    exchange: str,
    symbols: list[str],
    timeframes: list[str],
    history: int,
) -> None:
    namespace = f"bench:recovery:{uuid.uuid4().hex[:8]}:"
    keys = KeySpace(namespace)
    env = {**env, "LIVERMORE_NAMESPACE": namespace}
    page = COINBASE_PAGE if exchange == "coinbase" else BINANCE_PAGE
    pages = len(symbols) * sum(math.ceil(history / page) for _ in timeframes)
    floor, how = floor_seconds(exchange, pages)
    # Warm the simulator's market for the windows (the truth endpoint is not rate-limited), so
    # what is timed is the ingestor and the venue's limit, not the simulator computing history.
    now = await sim.now_ms()
    for symbol in symbols:
        for tf in timeframes:
            step = interval_ms(tf)
            await sim.truth(exchange, symbol, tf, now - (history + 2) * step, now)
    await asyncio.sleep(1.5)  # the warm-up's requests leave the REST rate window
    try:
        async with ingestor(redis, keys, env, exchange, symbols, timeframes, history) as watch:
            t0 = await wait_for(lambda: _true(watch.first("exchange:connecting")), 60, "connecting")
            t0 = watch.first("exchange:connecting") or t0

            async def finished() -> bool:
                return any(d == t and t > 0 for _, d, t, _ in watch.progress)

            await wait_for(finished, 600, f"{exchange} backfill")
            t1 = next(t for t, d, total, _ in watch.progress if d == total)
            candles = next(c for _, d, total, c in watch.progress if d == total)
            elapsed = t1 - t0
            bad = await verify_backfill(sim, redis, keys, exchange, symbols, timeframes, history)
            twice = await announced_twice(redis, keys)
    finally:
        await delete_namespace(redis, namespace)
    series = len(symbols) * len(timeframes)
    check = "all equal the simulator" if not bad else f"MISMATCH: {bad[:3]}"
    dup = "none announced twice" if not twice else f"{twice} ANNOUNCED TWICE"
    print(
        f"start-up backfill, {exchange}: {series} series ({len(symbols)} symbols x "
        f"{','.join(timeframes)}) x {history} candles, {candles:,} candles in {elapsed:.2f} s "
        f"(connecting -> last series stored); {check}; {dup}"
    )
    if exchange == "coinbase" and floor > 0:
        ratio = elapsed / floor
        verdict = "meets" if ratio <= BACKFILL_TARGET else "misses"
        print(
            f"  rate-limit floor {floor:.1f} s ({how}): {ratio:.2f}x the floor, {verdict} the "
            f"target (<= {BACKFILL_TARGET}x)"
        )
    else:
        print(
            f"  rate-limit floor ~0 s ({how}: fits one minute's budget, so round trips bound it, "
            "not the limit)"
        )


async def _true(value: object) -> bool:
    return value is not None


async def verify_backfill(
    sim: Sim,
    redis: aioredis.Redis,
    keys: KeySpace,
    exchange: str,
    symbols: list[str],
    timeframes: list[str],
    history: int,
) -> list[str]:
    """Every stored candle equals the truth and the stored range has no holes."""
    bad: list[str] = []
    for symbol in symbols:
        for tf in timeframes:
            got = await stored(redis, keys, exchange, symbol, tf)
            if len(got) < min(history, 2):
                bad.append(f"{symbol} {tf}: {len(got)} stored")
                continue
            want = await sim.truth(exchange, symbol, tf, got[0].timestamp, got[-1].timestamp + 1)
            if [c.timestamp for c in got] != [c.timestamp for c in want]:
                bad.append(f"{symbol} {tf}: buckets differ")
            else:
                diff = [(g, w) for g, w in zip(got, want, strict=True) if not same(g, w)]
                if diff:
                    g, w = diff[0]
                    bad.append(f"{symbol} {tf}: {len(diff)} differ, first stored {g} truth {w}")
    return bad


# ---- 2. reconnect -------------------------------------------------------------------------------


async def reconnect(
    sim: Sim,
    redis: aioredis.Redis,
    env: dict[str, str],
    exchange: str,
    fault: dict[str, Any],
    symbols: list[str],
    speed: float = 60.0,
) -> None:
    namespace = f"bench:recovery:{uuid.uuid4().hex[:8]}:"
    keys = KeySpace(namespace)
    env = {**env, "LIVERMORE_NAMESPACE": namespace}
    tf, step = "1m", 60_000
    label = f"{exchange} {fault['fault']}"
    try:
        async with ingestor(redis, keys, env, exchange, symbols, [tf], 30) as watch:
            await wait_for(
                lambda: _true(watch.first("exchange:connected")), 60, f"{label}: connected"
            )

            async def warm() -> bool:
                counts = [len(await stored(redis, keys, exchange, s, tf)) for s in symbols]
                return min(counts) >= 32  # backfilled, and live closes arriving

            await wait_for(warm, 60, f"{label}: live closes")
            fault_sim = await sim.now_ms()
            t_fault = time.perf_counter()
            await sim.fault({**fault, "exchange": exchange})
            if fault["fault"] == "server_shutdown":
                # Binance announces it; the feed opens the replacement before closing the old
                # socket, so there is no disconnect to detect. Measure from the fault instead.
                await asyncio.sleep(float(fault.get("after_s", 1.0)) + 1.0)
                t_detect = t_fault
            else:
                await wait_for(
                    lambda: _true(watch.first("exchange:disconnected", t_fault)),
                    120,
                    f"{label}: detection",
                    every=0.01,
                )
                t_detect = watch.first("exchange:disconnected", t_fault) or t_fault

            async def gap_free() -> bool:
                now = await sim.now_ms()
                end = now - step - 30_000  # every bucket that ended 30 s (sim) ago or earlier
                start = fault_sim - 3 * step
                for symbol in symbols:
                    want = await sim.truth(exchange, symbol, tf, start, end)
                    have = {c.timestamp for c in await stored(redis, keys, exchange, symbol, tf)}
                    if any(c.timestamp not in have for c in want):
                        return False
                return True

            t_free = await wait_for(gap_free, 60, f"{label}: gap-free", every=0.1)
            bad = await verify_backfill(sim, redis, keys, exchange, symbols, [tf], 30)
            twice = await announced_twice(redis, keys)
            events = [(t, e) for t, e in watch.events if t >= t_fault]
    finally:
        await delete_namespace(redis, namespace)
    detect, free = t_detect - t_fault, t_free - t_detect
    limit = DETECT_FACTOR * EXPECTED_INTERVAL_S[exchange]
    if fault["fault"] == "stall":
        detect_note = (
            f"detected in {detect:.2f} s (target <= {limit:.0f} s = 3x the {exchange} expected "
            f"message interval: {limit / max(detect, 1e-9):.2f}x)"
        )
    elif fault["fault"] == "server_shutdown":
        disconnects = sum(1 for _, e in events if e.event == "exchange:disconnected")
        detect_note = (
            f"{disconnects} disconnects (the feed rotates make-before-break); timed from the fault"
        )
    else:
        detect_note = f"disconnect seen in {detect:.2f} s"
    since = "the fault" if fault["fault"] == "server_shutdown" else "detection"
    check = "stored sets equal the simulator" if not bad else f"MISMATCH: {bad[:3]}"
    dup = "none announced twice" if not twice else f"{twice} ANNOUNCED TWICE"
    print(
        f"reconnect, {label} ({len(symbols)} 1m series, simulator at {speed:g}x): {detect_note}; "
        f"gap-free {free:.2f} s after {since} (target <= {GAP_FREE_TARGET_S:.0f} s: "
        f"{GAP_FREE_TARGET_S / max(free, 1e-9):.2f}x); {check}; {dup}"
    )


# ---- main ---------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    print(machine())
    redis = aioredis.Redis.from_url(args.redis_url)
    timeframes = args.timeframes.split(",")
    longest = max(interval_ms(tf) for tf in timeframes) // 60_000
    try:
        async with private_database(args.database_url, "recovery") as db_url:
            env = {
                **os.environ,
                "LIVERMORE_REDIS_URL": args.redis_url,
                "LIVERMORE_DATABASE_URL": db_url,
            }
            history_minutes = (args.history + 5) * longest
            async with simulator(
                db_url, symbols=args.symbols, speed=1.0, history_minutes=history_minutes
            ) as sim:
                for exchange in () if args.skip_backfill else ("coinbase", "binance"):
                    names = sim.symbols[exchange][: args.symbols]
                    await startup_backfill(
                        sim, redis, env, exchange, names, timeframes, args.history
                    )
            if args.skip_reconnect:
                return 0
            n = args.reconnect_symbols
            speed = args.reconnect_speed
            async with simulator(db_url, symbols=n, speed=speed, history_minutes=120) as sim:
                cases: list[tuple[str, dict[str, Any]]] = [
                    ("coinbase", {"fault": "stall", "seconds": 4.0}),
                    ("binance", {"fault": "drop"}),
                    ("binance", {"fault": "server_shutdown", "after_s": 0.2}),
                ]
                for exchange, fault in cases:
                    await reconnect(
                        sim, redis, env, exchange, fault, sim.symbols[exchange][:n], speed
                    )
    finally:
        await redis.aclose()
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--symbols", type=int, default=30)
    p.add_argument("--timeframes", default="1m,5m,15m")
    p.add_argument("--history", type=int, default=300, help="closed candles per series")
    p.add_argument("--reconnect-symbols", type=int, default=10, help="1m series per fault")
    p.add_argument(
        "--reconnect-speed", type=float, default=60.0, help="simulator speed for the faults"
    )
    p.add_argument("--skip-backfill", action="store_true")
    p.add_argument("--skip-reconnect", action="store_true")
    p.add_argument(
        "--redis-url", default=os.environ.get("LIVERMORE_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    p.add_argument(
        "--database-url",
        default=os.environ.get(
            "LIVERMORE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/livermore"
        ),
        help="a server where a private database is created, migrated and dropped",
    )
    return asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
