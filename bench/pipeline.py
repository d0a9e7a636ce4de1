"""Benchmark: the indicator worker's rate and burst, and closed candle -> alert latency.

1. Worker rate: one `IndicatorWorker` (the real handler, state store and candle reader of
   `livermore indicators`) consuming the closed-candle stream in this process, on real Redis.
   5,000 series get history first; their first close rebuilds each state (cold, shown apart);
   then rounds of 5,000 simultaneous closes (one per series) are measured: closed candles/s over
   all rounds (target >= 20,000) and each round's time (the burst target, <= 0.5 s). The closes
   are announced (`CandleCache.announce_closed_many`) before the worker starts on a round, so
   the figures are the worker's own.
2. Latency: `livermore indicators` and `livermore alerts` run as separate processes (their own
   namespace; alerts with a private, migrated Postgres database, then with `--no-history`).
   Series shaped like the pipeline tests' waves cross alert levels; closes are announced a tick
   at a time, and each alert received on `channel:alerts:{ex}` is mapped back, by (symbol,
   timeframe, candle_timestamp), to the moment its close was announced. p50 target 3 ms, p99 15.
   What the target names is "final frame received -> alert published". The clock starts when
   this process calls `CandleCache.announce_closed_many` for a tick's closes, the call the
   ingestor's writer makes as soon as a final frame is parsed (parsing and queueing, a few µs
   per frame, are measured by bench/ingest.py, not here); it stops when the alert reaches a
   subscriber here, one delivery after its publication, so the figure errs on the high side.
   Each alert is also split at the arrival of the indicator update it was raised on:
   close -> update (the indicator worker) and update -> alert (the alert evaluator). Then the
   evaluator stage alone: `livermore alerts` only, fed the same updates by this process.

Everything written lives under a unique namespace, deleted (SCAN) at the end; the database is
dropped. `.venv/bin/python bench/pipeline.py [--series 5000] [--skip-worker] [--skip-latency]`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import NamedTuple

import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `services` when run as a script

from _common import delete_namespace, machine, private_database  # noqa: E402

from livermore_common import messages  # noqa: E402
from livermore_common.cache import CandleCache  # noqa: E402
from livermore_common.config import CommonSettings, load_common  # noqa: E402
from livermore_common.indicators import macdv_series  # noqa: E402
from livermore_common.keys import KeySpace  # noqa: E402
from livermore_common.logs import configure_logging  # noqa: E402
from livermore_common.messages import Alert, Candle, CandleClosed, IndicatorUpdate  # noqa: E402
from livermore_common.rawredis import RawConnection  # noqa: E402
from livermore_common.redisbus import (  # noqa: E402
    create_redis,
    execute_packed,
    pack_command,
    raw_pool,
)
from livermore_common.streams import StreamConsumer  # noqa: E402
from livermore_common.warm import keep_warm, touch_sorted_sets  # noqa: E402
from services.indicators.config import IndicatorSettings  # noqa: E402
from services.indicators.service import GROUP, candle_reader  # noqa: E402
from services.indicators.store import StateStore  # noqa: E402
from services.indicators.worker import IndicatorWorker, to_update  # noqa: E402

TARGET_RATE = 20_000
TARGET_BURST_S = 0.5
TARGET_P50_MS = 3.0
TARGET_P99_MS = 15.0
START = 1_767_225_600_000
MIN = 60_000
EXCHANGE_ID, EXCHANGE = 2, "binance"


def wave(i: int, phase: float) -> Candle:
    """Bar i of a sine with drift (tests/integration/pipeline's wave): MACD-V swings through
    both extremes, so level crossings and reversals happen every few dozen bars."""
    close = 100 + 10 * math.sin(i / 5 + phase) + 0.5 * i
    prev = 100 + 10 * math.sin((i - 1) / 5 + phase) + 0.5 * (i - 1)
    open_ = close - 0.3 if i == 0 else prev
    return Candle(
        timestamp=START + i * MIN,
        open=open_,
        high=max(open_, close) + 1 + (i % 3) * 0.5,
        low=min(open_, close) - 1 - (i % 4) * 0.25,
        close=close,
        volume=1.0 + i,
    )


def close_event(symbol: str, i: int, phase: float, *, fresh: bool = True) -> CandleClosed:
    c = wave(i, phase)
    return CandleClosed(
        exchange_id=EXCHANGE_ID,
        exchange=EXCHANGE,
        symbol=symbol,
        timeframe="1m",
        timestamp=c.timestamp,
        open=c.open,
        high=c.high,
        low=c.low,
        close=c.close,
        volume=c.volume,
        # Fresh closes are known just after they close; stale ones (history) never alert.
        exchange_time=c.timestamp + (MIN + 500 if fresh else 100 * MIN),
        received_at=int(time.time() * 1000),
    )


@contextlib.asynccontextmanager
async def namespaced(redis_url: str, label: str) -> AsyncIterator[tuple[aioredis.Redis, KeySpace]]:
    namespace = f"bench:{label}:{uuid.uuid4().hex[:8]}:"
    # The services' own client settings (no socket timeout: redis-py 8's default 5 s sends every
    # command from a task of its own), so the in-process worker is measured as it runs.
    redis = create_redis(redis_url, client_name="bench-pipeline")
    try:
        yield redis, KeySpace(namespace)
    finally:
        await delete_namespace(redis, namespace)
        await redis.aclose()


class Subscriber:
    """A lean subscriber (a `rawredis` connection): each message is stamped as it is read and
    decoded only afterwards, so the figure is the delivery, not this process's parsing."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self.messages: list[tuple[float, list[bytes]]] = []
        self._conn: RawConnection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, channels: list[str], patterns: list[str] = ()) -> None:  # type: ignore[assignment]
        raw = raw_pool(self._redis)
        assert raw is not None, "a client from create_redis"
        self._conn = conn = await raw.acquire()
        for verb, names in (("SUBSCRIBE", channels), ("PSUBSCRIBE", patterns)):
            for name in names:
                await conn.write(pack_command(verb, name))
                await conn.read()
        self._task = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        assert self._conn is not None
        read, out = self._conn.read, self.messages
        while True:
            message = await read()
            out.append((time.perf_counter(), message))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            self._conn.close()


@contextlib.asynccontextmanager
async def warm_like_the_service(
    redis: aioredis.Redis,
    rehearse: Callable[[], object],
    activity: Callable[[], int],
    touch: Callable[[], bytes | None] | None = None,
) -> AsyncIterator[None]:
    """This process stands in for a service on the path (the ingestor's writer, or the worker),
    so it keeps its side warm as that service does (`livermore_common.warm`), with its ticks as
    the work that counts."""
    stop = asyncio.Event()
    period = load_common(os.environ).keep_warm_ms  # the services' setting (they get this env)
    task = asyncio.create_task(
        keep_warm(stop, redis, period_ms=period, rehearse=rehearse, activity=activity, touch=touch)
    )
    try:
        yield
    finally:
        stop.set()
        await task


# ---- 1. worker rate and burst -------------------------------------------------------------------


async def drain(consumer: StreamConsumer, count: int) -> tuple[float, float]:
    """(seconds, CPU seconds of this process) until `count` entries were handled."""
    started, cpu, handled = time.perf_counter(), time.process_time(), 0
    while handled < count:
        got = await consumer.step(block_ms=0)
        handled += got
        if not got:
            await asyncio.sleep(0)
    return time.perf_counter() - started, time.process_time() - cpu


async def worker_figures(redis_url: str, series: int, rounds: int, history: int) -> None:
    async with namespaced(redis_url, "pipeline") as (redis, keys):
        cache = CandleCache(redis, keys)
        settings = IndicatorSettings(common=CommonSettings(redis_url=redis_url))
        worker = IndicatorWorker(
            store=StateStore(redis, stream=keys.indicator_stream),
            keys=keys,
            read_candles=candle_reader(cache, settings),
        )
        symbols = [f"S{n:05d}" for n in range(series)]
        phases = [n * 0.37 for n in range(series)]
        for i in range(history):  # stored history, then the stream is dropped: not measured
            await cache.announce_closed_many(
                close_event(s, i, p, fresh=False) for s, p in zip(symbols, phases, strict=True)
            )
        await redis.delete(keys.candle_closed_stream)
        gc.freeze()  # as `livermore indicators` does after start-up: the setup is not garbage
        consumer = StreamConsumer(
            redis,
            keys.candle_closed_stream,
            GROUP,
            "bench",
            worker.handle,
            batch_size=settings.batch_size,
            claim_idle_ms=600_000,
        )
        await consumer.start()
        times: list[float] = []
        cpu = 0.0
        for r in range(rounds + 1):
            i = history + r
            await cache.announce_closed_many(
                close_event(s, i, p) for s, p in zip(symbols, phases, strict=True)
            )
            took, used = await drain(consumer, series)
            times.append(took)
            cpu += used if r else 0.0
        cold, warm = times[0], times[1:]
        rate = series * len(warm) / sum(warm)
        print(
            f"indicator worker, one process: {rate:,.0f} closed candles/s over {len(warm)} rounds "
            f"of {series:,} series, {rate / TARGET_RATE:.2f}x target ({TARGET_RATE:,}); "
            f"the worker used {cpu / sum(warm):.0%} of a core (the rest: waiting on Redis); "
            f"rebuilds {worker.stats.rebuilds:,}, published {worker.stats.published:,}"
        )
        worst, median = max(warm), statistics.median(warm)
        print(
            f"burst of {series:,} simultaneous closes (different series): median "
            f"{median:.3f} s, worst {worst:.3f} s; target <= {TARGET_BURST_S} s: "
            f"{TARGET_BURST_S / median:.2f}x (median), {TARGET_BURST_S / worst:.2f}x (worst)"
        )
        print(
            f"  cold round (each state rebuilt from {history} stored candles): {cold:.3f} s "
            f"({series / cold:,.0f} closed candles/s)"
        )


# ---- 2. latency across processes ----------------------------------------------------------------


@contextlib.asynccontextmanager
async def services(
    env: dict[str, str], alerts_args: list[str], *, indicators: bool = True
) -> AsyncIterator[None]:
    """`livermore indicators` and `livermore alerts` in their own processes."""
    procs = []
    try:
        for args in ([["indicators"]] if indicators else []) + [["alerts", *alerts_args]]:
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "services.cli",
                    *args,
                    cwd=ROOT,
                    env=env,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
            )
        yield
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def caught_up(redis: aioredis.Redis, keys: KeySpace, *, indicators: bool = True) -> bool:
    """The consumer groups exist and have nothing pending or unread."""
    groups_wanted = [(keys.indicator_stream, b"alerts")]
    if indicators:
        groups_wanted.insert(0, (keys.candle_closed_stream, b"indicators"))
    for stream, group in groups_wanted:
        try:
            groups = await redis.xinfo_groups(stream)
        except aioredis.ResponseError:
            return False
        mine = [g for g in groups if g["name"] == group]
        if not mine or mine[0]["pending"] or mine[0].get("lag"):
            return False
    return True


async def wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


class Latency(NamedTuple):
    """Milliseconds, per alert received: from its close's announcement (the ingestor's write of
    the final frame's close) to its arrival, split at the arrival of the indicator update it was
    raised on; and the indicator stage of every update, alerting or not."""

    close_to_alert: list[float]
    close_to_update: list[float]  # of the alerting closes
    update_to_alert: list[float]
    all_updates: list[float]


def service_env(redis_url: str, keys: KeySpace, database_url: str | None) -> dict[str, str]:
    """The environment of the services a latency run starts: this Redis, the run's namespace,
    and the private database when alert_history is recorded."""
    env = dict(os.environ)
    env.update(
        LIVERMORE_REDIS_URL=redis_url,
        LIVERMORE_NAMESPACE=keys.namespace,
        LIVERMORE_LOG_LEVEL="warning",
    )
    if database_url:
        env["LIVERMORE_DATABASE_URL"] = database_url
    return env


async def latency_run(
    redis_url: str, database_url: str | None, series: int, ticks: int, interval: float
) -> Latency:
    async with namespaced(redis_url, "latency") as (redis, keys):
        env = service_env(redis_url, keys, database_url)
        cache = CandleCache(redis, keys)
        symbols = [f"L{n:03d}" for n in range(series)]
        phases = [n * 0.9 for n in range(series)]
        # Groups first, so the processes start on an empty stream at once.
        sent: dict[tuple[str, str, int], float] = {}
        received: list[tuple[float, Alert]] = []
        updates: dict[tuple[str, str, int], float] = {}
        # The indicator channel too: where the time goes (worker vs evaluator).
        subscriber = Subscriber(redis)
        await subscriber.start(
            [keys.alerts_channel(EXCHANGE_ID)],
            [keys.indicator_channel(EXCHANGE_ID, "*", "1m", "macd-v")],
        )
        last: list[CandleClosed] = []
        async with (
            services(env, [] if database_url else ["--no-history"]),
            warm_like_the_service(
                redis,
                lambda: last and cache.pack_announce(last),
                lambda: len(sent),
                lambda: touch_sorted_sets(cache.candle_keys(last)),
            ),
        ):
            warm = 40  # history: state seeded, no alerts (stale closes)
            for i in range(warm):
                await cache.announce_closed_many(
                    close_event(s, i, p, fresh=False) for s, p in zip(symbols, phases, strict=True)
                )
            await wait_until(lambda: caught_up(redis, keys), 60, "the services to start")
            for i in range(warm, warm + ticks):
                batch = [close_event(s, i, p) for s, p in zip(symbols, phases, strict=True)]
                now = time.perf_counter()
                for event in batch:
                    sent[(event.symbol, event.timeframe, event.timestamp)] = now
                await cache.announce_closed_many(batch)
                last[:] = batch[-8:]
                await asyncio.sleep(interval)
            await wait_until(lambda: caught_up(redis, keys), 30, "the services to finish")
            await asyncio.sleep(0.2)
        await subscriber.stop()
    for at, message in subscriber.messages:
        if message[0] == b"message":
            received.append((at, messages.decode(message[2], Alert)))
        elif message[0] == b"pmessage":
            u = messages.decode(message[3], IndicatorUpdate)
            updates[(u.symbol, u.timeframe, u.timestamp)] = at
    out = Latency([], [], [], [(at - sent[k]) * 1000 for k, at in updates.items() if k in sent])
    for at, a in received:
        key = (a.symbol, a.timeframe, a.candle_timestamp)
        if key in sent:
            out.close_to_alert.append((at - sent[key]) * 1000)
            if key in updates:  # pub/sub is at most once: normally every update arrives
                out.close_to_update.append((updates[key] - sent[key]) * 1000)
                out.update_to_alert.append((at - updates[key]) * 1000)
    return out


_APPEND = "for i = 1, #ARGV do redis.call('XADD', KEYS[1], '*', 'data', ARGV[i]) end"


async def evaluator_run(
    redis_url: str, database_url: str | None, series: int, ticks: int, interval: float
) -> list[float]:
    """The evaluator stage alone: `livermore alerts` is the only service; this process appends
    the indicator updates (computed from scratch for the same wave series, as the worker would
    publish them) to the indicator stream a tick at a time. Milliseconds from each alert-raising
    update's append to the alert's arrival: without the worker's CPU and Redis time competing."""
    async with namespaced(redis_url, "evaluator") as (redis, keys):
        env = service_env(redis_url, keys, database_url)
        warm = 40
        by_tick: list[list[IndicatorUpdate]] = [[] for _ in range(warm + ticks)]
        for n in range(series):
            events = [
                close_event(f"L{n:03d}", i, n * 0.9, fresh=i >= warm) for i in range(warm + ticks)
            ]
            prev = None
            for i, (event, point) in enumerate(
                zip(events, macdv_series([e.candle() for e in events], MIN), strict=True)
            ):
                if point.macd_v is not None:
                    by_tick[i].append(to_update(event, point, prev))
                    prev = point.timestamp
        sent: dict[tuple[str, str, int], float] = {}
        subscriber = Subscriber(redis)
        await subscriber.start([keys.alerts_channel(EXCHANGE_ID)])
        last: list[list[IndicatorUpdate]] = []

        def packed(updates: list[IndicatorUpdate]) -> bytes:
            # One script call: the evaluator's blocked read sees the tick whole, as it sees the
            # updates a worker's commit script appends. Packed before the clock starts.
            data = [messages.encode(u) for u in updates]
            return pack_command("EVAL", _APPEND, 1, keys.indicator_stream, *data)

        async def append(command: bytes) -> None:
            for reply in await execute_packed(redis, [command]):
                if isinstance(reply, Exception):
                    raise reply

        async with (
            services(env, [] if database_url else ["--no-history"], indicators=False),
            warm_like_the_service(redis, lambda: last and packed(last[0]), lambda: len(sent)),
        ):
            for tick in by_tick[:warm]:
                await append(packed(tick))
            await wait_until(
                lambda: caught_up(redis, keys, indicators=False), 60, "the evaluator to start"
            )
            for tick in by_tick[warm:]:
                command = packed(tick)
                now = time.perf_counter()
                for u in tick:
                    sent[(u.symbol, u.timeframe, u.timestamp)] = now
                await append(command)
                last[:] = [tick]
                await asyncio.sleep(interval)
            await wait_until(
                lambda: caught_up(redis, keys, indicators=False), 30, "the evaluator to finish"
            )
            await asyncio.sleep(0.2)
        await subscriber.stop()
    received = [
        (at, messages.decode(m[2], Alert)) for at, m in subscriber.messages if m[0] == b"message"
    ]
    return [
        (at - sent[(a.symbol, a.timeframe, a.candle_timestamp)]) * 1000
        for at, a in received
        if (a.symbol, a.timeframe, a.candle_timestamp) in sent
    ]


_RELAY = """
import asyncio, sys
import redis.asyncio as aioredis
async def main():
    r = aioredis.Redis.from_url(sys.argv[1], socket_timeout=None)  # as the services' clients
    last = "$"
    while True:
        for _, entries in await r.xread({sys.argv[2]: last}, block=1000) or []:
            for entry_id, fields in entries:
                last = entry_id
                await r.publish(sys.argv[3], fields[b"data"])
asyncio.run(main())
"""


async def hop_floor(redis_url: str, count: int = 200) -> list[float]:
    """What one process hop costs here: XADD, a relay process blocked in XREAD wakes and
    PUBLISHes, this process receives it. The pipeline's path has two such hops plus its own
    round trips, so this bounds what any implementation on this machine can reach."""
    async with namespaced(redis_url, "hop") as (redis, keys):
        stream, channel = f"{keys.namespace}stream", f"{keys.namespace}channel"
        relay = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _RELAY, redis_url, stream, channel
        )
        pubsub = redis.pubsub()
        await pubsub.subscribe(channel)
        await asyncio.sleep(1.0)  # the relay connects and blocks
        lat: list[float] = []
        try:
            for i in range(count):
                started = time.perf_counter()
                await redis.xadd(stream, {"data": str(i)}, maxlen=1000)
                while True:
                    message = await pubsub.get_message(timeout=5)
                    if message is not None and message["type"] == "message":
                        break
                lat.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.01)
        finally:
            relay.terminate()
            await relay.wait()
            await pubsub.aclose()
    return lat


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def spread(values: list[float]) -> str:
    return f"p50 {percentile(values, 0.5):.2f} ms, p99 {percentile(values, 0.99):.2f} ms"


def report_latency(label: str, lat: Latency) -> None:
    if lat.all_updates:
        print(
            f"  of which close announced -> indicator update received: {spread(lat.all_updates)} "
            f"({len(lat.all_updates)} updates)"
        )
    if not lat.close_to_alert:
        print(f"latency {label}: no alerts received")
        return
    values = lat.close_to_alert
    p50, p99 = percentile(values, 0.50), percentile(values, 0.99)
    print(
        f"latency close announced -> alert received ({label}), {len(values)} alerts: "
        f"p50 {p50:.2f} ms ({TARGET_P50_MS / p50:.2f}x target {TARGET_P50_MS:.0f} ms), "
        f"p99 {p99:.2f} ms ({TARGET_P99_MS / p99:.2f}x target {TARGET_P99_MS:.0f} ms), "
        f"max {max(values):.2f} ms"
    )
    if lat.update_to_alert:
        print(
            f"  stages of those alerts, as received here: close -> indicator update "
            f"{spread(lat.close_to_update)}; "
            f"update -> alert (the evaluator) {spread(lat.update_to_alert)}"
        )


async def run(args: argparse.Namespace) -> int:
    print(machine())
    if not args.skip_worker:
        await worker_figures(args.redis_url, args.series, args.rounds, args.history)
    if args.skip_latency:
        return 0
    every = args.interval * 1000
    print(
        f"latency setup: {args.latency_series} series, a close each every {every:.0f} ms for "
        f"{args.ticks} ticks; `livermore indicators` and `livermore alerts` each in its own process"
    )
    hop = await hop_floor(args.redis_url)
    print(
        f"platform floor: one process hop (XADD -> relay process XREAD -> PUBLISH -> received) "
        f"p50 {percentile(hop, 0.5):.2f} ms, p99 {percentile(hop, 0.99):.2f} ms; "
        "close -> alert crosses two such hops"
    )
    shape = (args.latency_series, args.ticks, args.interval)
    async with private_database(args.database_url, "pipeline") as url:
        report_latency(
            "alerts with alert_history in Postgres", await latency_run(args.redis_url, url, *shape)
        )
        if not args.skip_evaluator_alone:
            alone = await evaluator_run(args.redis_url, url, *shape)
            print(
                f"evaluator alone (this process appends the updates; `livermore alerts` with "
                f"alert_history the only service): update appended -> alert received "
                f"{spread(alone)} ({len(alone)} alerts)"
            )
    report_latency("alerts --no-history", await latency_run(args.redis_url, None, *shape))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--series", type=int, default=5000, help="series per worker round (burst)")
    p.add_argument("--rounds", type=int, default=4, help="measured worker rounds")
    p.add_argument("--history", type=int, default=40, help="stored candles per series first")
    p.add_argument("--latency-series", type=int, default=20)
    p.add_argument("--ticks", type=int, default=300, help="closes per latency series")
    p.add_argument("--interval", type=float, default=0.05, help="seconds between latency ticks")
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument("--skip-worker", action="store_true", help="latency section only")
    p.add_argument(
        "--skip-evaluator-alone", action="store_true", help="no evaluator-only latency run"
    )
    p.add_argument(
        "--redis-url", default=os.environ.get("LIVERMORE_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    p.add_argument(
        "--database-url",
        default=os.environ.get(
            "LIVERMORE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/livermore"
        ),
        help="server (and credentials) for the private database; its name is not used",
    )
    args = p.parse_args()
    configure_logging(service="bench", level="WARNING")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
