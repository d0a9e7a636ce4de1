"""Benchmark: Binance frames parsed and written by one ingestor process, against the simulator.

Three figures, each printed with its ratio to the target (ARCHITECTURE.md "Performance targets"):

1. parse only, in process: `BinanceFeed.handle_frame` over pre-rendered frames (no socket);
2. parse only, over the socket: the real adapter feed reading the simulator's firehose, events
   counted and dropped (no Redis);
3. end to end: the same feed driving the ingestor's `FeedSession` write path (closed candles
   stored in Redis and announced on the stream and channel), frames/s and candles announced/s.

The simulator runs in its own process (`python -m services.sim --firehose`), so it does not share
this process's core; its frames (symbols x minutes x 4) are rendered before the clock starts.
Figures 2 and 3 are measured twice: over plain `ws://`, then over TLS (`wss://`, the simulator
started with `--tls`, its self-signed certificate trusted through `AdapterOptions.ca_file`), the
target's condition. The end-to-end window also reports the CPU this process, the simulator and
the Redis server used (Linux /proc and INFO cpu), since the three share the machine. Everything
written to Redis lives under a unique namespace, deleted (SCAN) at the end.

    .venv/bin/python bench/ingest.py [--symbols 200] [--seconds 3] [--transports plain,tls]
                                     [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NamedTuple

import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `services` (the simulator, the ingestor) when run as a script

from _common import delete_namespace, machine  # noqa: E402

from livermore_common.cache import CandleCache  # noqa: E402
from livermore_common.config import CommonSettings  # noqa: E402
from livermore_common.exchanges.base import (  # noqa: E402
    AdapterOptions,
    ClosedCandle,
    ExchangeInfo,
)
from livermore_common.exchanges.binance.adapter import BinanceAdapter  # noqa: E402
from livermore_common.exchanges.binance.feed import BinanceFeed  # noqa: E402
from livermore_common.exchanges.ratelimit import RateLimiter  # noqa: E402
from livermore_common.keys import KeySpace  # noqa: E402
from livermore_common.logs import configure_logging  # noqa: E402
from livermore_common.messages import CandleClosed, SymbolEntry  # noqa: E402
from services.ingestor.config import IngestorSettings  # noqa: E402
from services.ingestor.session import Counters, FeedSession  # noqa: E402
from services.ingestor.status import StatusTracker  # noqa: E402
from services.sim.config import SimConfig  # noqa: E402
from services.sim.firehose import render_symbol  # noqa: E402
from services.sim.market import Market  # noqa: E402

TARGET_FRAMES = 120_000
TARGET_CANDLES = 30_000
ISSUE_FLOOR_FRAMES = 30_000
START_MS = 1_767_225_600_000  # 2026-01-01T00:00Z: a fixed clock start, so runs are comparable


def ratio(value: float, target: float) -> str:
    return f"{value / target:.2f}x target ({target:,.0f})"


def cpu_note(rate: float, share: float) -> str:
    """The process's CPU use in the window: below ~95% the other side (simulator, Redis, other
    work on the machine) was the limit, and rate / share is what a whole core would do."""
    return f"this process used {share:.0%} of a core: {rate / max(share, 1e-9):,.0f} per CPU-second"


# ---- 1. parse only, in process ------------------------------------------------------------------


def _payload(frame: bytes) -> bytes:
    """The text of a server WebSocket frame (unmasked, as the simulator renders them)."""
    n = frame[1] & 0x7F
    return frame[2:] if n < 126 else frame[4:] if n == 126 else frame[10:]


def parse_only_in_process(symbols: int = 50, minutes: int = 60) -> float:
    config = SimConfig(symbols=symbols, start_time_ms=START_MS)
    market = Market("binance", config)
    first = START_MS // 60_000
    per = [render_symbol(market, i, first, minutes) for i in range(symbols)]
    frames = [
        _payload(per[s][m][k]) for m in range(minutes) for k in range(4) for s in range(symbols)
    ]
    best = 0.0
    for _ in range(3):
        feed = BinanceFeed(
            ws_url="ws://unused",
            symbols=[s.name for s in market.symbols],
            timeframes=["1m"],
            options=AdapterOptions(),
            max_streams=1024,
            messages_per_second=5,
            connect_limiter=RateLimiter(rate=1, capacity=1),
        )
        handle = feed.handle_frame
        started = time.perf_counter()
        for frame in frames:
            handle(frame)
        best = max(best, len(frames) / (time.perf_counter() - started))
        assert feed.stats.closed_candles == symbols * minutes, feed.stats
    return best


# ---- the simulator in its own process -----------------------------------------------------------


@contextlib.asynccontextmanager
async def simulator(symbols: int, minutes: int, tls: bool = False) -> AsyncIterator[Venue]:
    """`python -m services.sim --firehose [--tls]`; yields the Binance base URL and the adapter
    options (trusting the simulator's certificate with TLS) once frames are ready."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.sim",
        "--firehose",
        "--firehose-minutes",
        str(minutes),
        "--symbols",
        str(symbols),
        "--start-time",
        str(START_MS),
        "--history-minutes",
        "60",
        *(["--tls"] if tls else []),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 600)).decode()
        if not line.startswith("sim ready"):
            raise RuntimeError(f"simulator did not start: {line!r}")
        urls = dict(part.split("=", 1) for part in line.split()[2:])
        yield Venue(urls["binance"], AdapterOptions(ca_file=urls.get("ca")), proc.pid)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


class Venue(NamedTuple):
    base_url: str  # http://host:port, or https:// with TLS
    options: AdapterOptions
    pid: int  # the simulator process


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 where /proc is unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def redis_cpu(redis: aioredis.Redis) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def exchange_info(base_url: str) -> ExchangeInfo:
    return ExchangeInfo(
        id=2,
        name="binance",
        display_name="Binance (simulator)",
        ws_url="ws" + base_url.removeprefix("http"),  # ws:// or wss://
        rest_url=base_url,
    )


async def symbols_of(adapter: BinanceAdapter, count: int) -> list[str]:
    top = await adapter.top_symbols(count)
    return [v.symbol for v in top]


# ---- 2. parse only, over the socket -------------------------------------------------------------


async def parse_only_socket(venue: Venue, symbols: int, seconds: float) -> tuple[float, float, int]:
    """(frames/s, CPU share, frames) the feed reads and parses with nobody writing anything."""
    async with BinanceAdapter(exchange_info(venue.base_url), options=venue.options) as adapter:
        names = await symbols_of(adapter, symbols)
        feed = await adapter.open_feed(names, ["1m"])
        closed = 0

        async def drain() -> None:
            nonlocal closed
            async for event in feed:
                if type(event) is ClosedCandle:
                    closed += 1

        task = asyncio.create_task(drain())
        await asyncio.sleep(0.5)  # warm up
        f0, t0, c0 = feed.stats.frames, time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        f1, t1, c1 = feed.stats.frames, time.perf_counter(), time.process_time()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await feed.aclose()
    return (f1 - f0) / (t1 - t0), (c1 - c0) / (t1 - t0), f1


# ---- 3. end to end: feed + FeedSession writes ---------------------------------------------------


class Sample:
    def __init__(self, session: FeedSession, sim_pid: int, redis_cpu: float) -> None:
        feed = session._feed
        self.t = time.perf_counter()
        self.cpu = time.process_time()
        self.sim_cpu = process_cpu(sim_pid)
        self.redis_cpu = redis_cpu
        self.frames = feed.stats.frames if feed is not None else 0
        self.announced = session.counters.announced
        self.backlog = session._queue.qsize()


async def end_to_end(
    venue: Venue, redis_url: str, symbols: int, seconds: float, profile: str | None
) -> dict[str, float]:
    namespace = f"bench:ingest:{uuid.uuid4().hex[:8]}:"
    keys = KeySpace(namespace)
    redis = aioredis.Redis.from_url(redis_url)
    info = exchange_info(venue.base_url)
    settings = IngestorSettings(
        common=CommonSettings(redis_url=redis_url, namespace=namespace),
        exchange="binance",
        timeframes=("1m",),
        history_candles=1,
    )
    try:
        async with BinanceAdapter(info, options=venue.options) as adapter:
            names = await symbols_of(adapter, symbols)
            cache = CandleCache(redis, keys)
            await prime(cache, info, names, await adapter.server_time())
            session = FeedSession(
                adapter=adapter,
                cache=cache,
                settings=settings,
                status=StatusTracker(
                    redis, keys, exchange_id=info.id, exchange=info.name, instance_id="bench"
                ),
                entries=[SymbolEntry(symbol=n) for n in names],
                counters=Counters(),
            )
            task = asyncio.create_task(session.run())
            while not session._ready.is_set():
                if task.done():
                    await task
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # warm up: the queue built during the backfill drains
            profiler = cProfile.Profile() if profile else None
            if profiler:
                profiler.enable()
            first = Sample(session, venue.pid, await redis_cpu(redis))
            await asyncio.sleep(seconds)
            last = Sample(session, venue.pid, await redis_cpu(redis))
            if profiler:
                profiler.disable()
                profiler.dump_stats(profile)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            stream_len = await redis.xlen(keys.candle_closed_stream)
    finally:
        await delete_namespace(redis, namespace)
        await redis.aclose()
    dt = last.t - first.t
    return {
        "cpu_share": (last.cpu - first.cpu) / dt,
        "sim_share": (last.sim_cpu - first.sim_cpu) / dt,
        "redis_share": (last.redis_cpu - first.redis_cpu) / dt,
        "frames_per_s": (last.frames - first.frames) / dt,
        "candles_per_s": (last.announced - first.announced) / dt,
        "backlog_start": first.backlog,
        "backlog_end": last.backlog,
        "announced_total": last.announced,
        "stream_len": stream_len,
        "frames_total": last.frames,
    }


async def prime(cache: CandleCache, info: ExchangeInfo, names: list[str], now: int) -> None:
    """Store each series' last closed candle, so the session's start-up backfill has nothing to
    fetch (backfill speed is not what this measures, and it would eat the prepared frames)."""
    last = now - now % 60_000 - 60_000
    await cache.announce_closed_many(
        CandleClosed(
            exchange_id=info.id,
            exchange=info.name,
            symbol=name,
            timeframe="1m",
            timestamp=last,
            open=1.0,
            high=1.0,
            low=1.0,
            close=1.0,
            volume=0.0,
        )
        for name in names
    )


async def write_only(redis_url: str, symbols: int, minutes: int = 40) -> float:
    """Closed candles/s the cache stores and announces when nothing else runs in this process:
    the ceiling the writer can reach (its Lua script runs in Redis, ~4 commands per candle)."""
    namespace = f"bench:ingest:{uuid.uuid4().hex[:8]}:"
    redis = aioredis.Redis.from_url(redis_url)
    cache = CandleCache(redis, KeySpace(namespace))
    try:
        batches = [
            [
                CandleClosed(
                    exchange_id=2,
                    exchange="binance",
                    symbol=f"SYM{n:04d}USDT",
                    timeframe="1m",
                    timestamp=START_MS + m * 60_000,
                    open=27496.03,
                    high=27584.67,
                    low=27482.11,
                    close=27530.97,
                    volume=76.75698435,
                    exchange_time=START_MS + m * 60_000 + 60_001,
                )
                for n in range(symbols)
            ]
            for m in range(minutes)
        ]
        await cache.announce_closed_many(batches[0])  # script load, connection
        started = time.perf_counter()
        for batch in batches[1:]:
            await cache.announce_closed_many(batch)
        return symbols * (minutes - 1) / (time.perf_counter() - started)
    finally:
        await delete_namespace(redis, namespace)
        await redis.aclose()


# ---- main ---------------------------------------------------------------------------------------


TRANSPORTS = {"plain": "plain ws://", "tls": "TLS wss://"}


async def run(args: argparse.Namespace) -> int:
    print(machine())
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    print(
        "transports: "
        + ", ".join(TRANSPORTS[t] for t in transports)
        + " from the simulator on localhost (TLS: its self-signed certificate, verified)"
    )
    rate = parse_only_in_process()
    print(f"parse only, in process (handle_frame): {rate:,.0f} frames/s, {ratio(rate, 120_000)}")
    # Enough prepared frames for both socket runs at up to ~260,000 frames/s.
    needed = int(260_000 * (2 * args.seconds + 2.0))
    minutes = args.minutes or max(30, -(-needed // (args.symbols * 4)))
    for transport in transports:
        await measure(args, transport, minutes)
    rate = await write_only(args.redis_url, args.symbols)
    print(
        f"write path alone (announce_closed_many, {args.symbols}-candle batches, no feed): "
        f"{rate:,.0f} closed candles/s, {ratio(rate, TARGET_CANDLES)}"
    )
    if args.profile:
        print(f"profile of the (last) end-to-end window written to {args.profile}")
    return 0


async def measure(args: argparse.Namespace, transport: str, minutes: int) -> None:
    label = TRANSPORTS[transport]
    print(
        f"[{label}] simulator: {args.symbols} symbols x {minutes} minutes x 4 = "
        f"{args.symbols * minutes * 4:,} frames pre-rendered (in its own process) ..."
    )
    started = time.perf_counter()
    async with simulator(args.symbols, minutes, tls=transport == "tls") as venue:
        print(
            f"[{label}] simulator ready in {time.perf_counter() - started:.0f} s "
            f"at {venue.base_url}"
        )
        sock, share, total = await parse_only_socket(venue, args.symbols, args.seconds)
        print(
            f"[{label}] parse only, over the socket (adapter feed, no Redis): {sock:,.0f} "
            f"frames/s, {ratio(sock, TARGET_FRAMES)} ({cpu_note(sock, share)})"
        )
        e2e = await end_to_end(venue, args.redis_url, args.symbols, args.seconds, args.profile)
    frames, candles = e2e["frames_per_s"], e2e["candles_per_s"]
    done = 4 * candles  # frames whose candle is stored and announced
    print(
        f"[{label}] end to end (feed + FeedSession, stored and announced in Redis): "
        f"{done:,.0f} frames/s written (4 per closed candle), {ratio(done, TARGET_FRAMES)}; "
        f"issue 3 floor: {ratio(done, ISSUE_FLOOR_FRAMES)}"
    )
    print(
        f"[{label}] end to end: {candles:,.0f} closed candles/s stored and announced, "
        f"{ratio(candles, TARGET_CANDLES)}; frames read and parsed meanwhile {frames:,.0f}/s "
        f"({cpu_note(frames, e2e['cpu_share'])}); write backlog {e2e['backlog_start']:.0f} -> "
        f"{e2e['backlog_end']:.0f} closed candles (bounded: the feed pauses when it is full)"
    )
    print(
        f"[{label}] CPU during the end-to-end window (of one core): this process "
        f"{e2e['cpu_share']:.0%}, simulator {e2e['sim_share']:.0%}, Redis server "
        f"{e2e['redis_share']:.0%} (the whole server: other clients included)"
    )
    if total + e2e["frames_total"] > args.symbols * minutes * 4:
        print(f"[{label}] note: the run went past the pre-rendered window; raise --minutes")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--symbols", type=int, default=200)
    p.add_argument("--seconds", type=float, default=3.0, help="length of each measured window")
    p.add_argument("--minutes", type=int, default=0, help="pre-rendered minutes (0 = enough)")
    p.add_argument(
        "--redis-url", default=os.environ.get("LIVERMORE_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    p.add_argument(
        "--transports", default="plain,tls", help="plain and/or tls, comma-separated (in order)"
    )
    p.add_argument("--profile", default=None, help="write a cProfile of the end-to-end window")
    args = p.parse_args()
    configure_logging(service="bench", level="WARNING")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
