"""One connected run of an ingestor: backfill, the live feed, higher timeframes, and the writes.

Order of work on connect: the feed is opened first and its closed candles are queued; the backfill
then writes every missing closed candle oldest first; only then does the writer drain the queue.
So nothing between "history" and "live" is missed, and each series is announced in time order.
Duplicates (replicas, reconnects, REST vs WS) are dropped atomically by the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from typing import Any

from livermore_common.cache import CandleCache
from livermore_common.errors import RateLimitedError, TransientError
from livermore_common.exchanges.base import (
    ClosedCandle,
    ExchangeAdapter,
    Feed,
    FeedDropped,
    FeedGap,
    Heartbeat,
)
from livermore_common.logs import get_logger
from livermore_common.messages import Candle, CandleClosed, SymbolEntry
from livermore_common.redisbus import raise_if_cancelled
from livermore_common.timeframes import interval_ms
from livermore_common.warm import keep_warm, touch_sorted_sets

from .backfill import Progress, backfill_window
from .config import IngestorSettings
from .higher import DueBucket, HigherTimeframes, base_timeframes, combine
from .status import StatusTracker

_WRITE_BATCH = 1000
# Live batches in flight in Redis at most (right after a send; then the oldest is settled).
_IN_FLIGHT = 4
# Closes the keep-warm rehearsal packs again (a few: it runs every couple of ms while idle).
_REHEARSED = 8
_BEAT_WRITE_S = 0.1
_QUEUE_LIMIT = 50_000
_RATE_LIMIT_RETRIES = 5
# A background repair that fails (venue errors, rate limits beyond the retries) is tried again
# after this delay, doubling up to the cap, until it succeeds or the session ends: a gap the
# feed reported must never be left in place.
_REPAIR_RETRY_S = 0.5
_REPAIR_RETRY_MAX_S = 30.0


class Counters:
    def __init__(self) -> None:
        self.closed = 0
        self.announced = 0
        self.dropped = 0
        self.gaps = 0
        self.backfilled = 0
        self.rate_limited = 0
        self.repair_retries = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


class FeedSession:
    def __init__(
        self,
        *,
        adapter: ExchangeAdapter,
        cache: CandleCache,
        settings: IngestorSettings,
        status: StatusTracker,
        entries: Sequence[SymbolEntry],
        counters: Counters,
    ) -> None:
        self._adapter = adapter
        self._cache = cache
        self._settings = settings
        self._status = status
        self._entries = {e.symbol: e for e in entries}
        self.counters = counters
        self._info = adapter.info
        native = adapter.capabilities.native_timeframes
        tracked = settings.timeframes
        self._higher = HigherTimeframes(
            base_timeframes(tracked, native), grace_ms=settings.close_grace_ms
        )
        self._stored_native = {tf for tf in tracked if tf in native} | self._higher.needed_native()
        # Closed candles with the local time (ms) they were received, waiting for the writer.
        # Bounded: a writer that falls behind stops the consumer, whose feed then pauses its
        # sockets (TCP backpressure) instead of memory growing without limit.
        self._queue: asyncio.Queue[tuple[ClosedCandle, int]] = asyncio.Queue(_QUEUE_LIMIT)
        self._bases = self._higher.needed_native()
        self._waiting_since: float | None = None
        self._next_beat_write = 0.0
        self._exchange_time = 0
        self._feed: Feed | None = None
        self._ready = asyncio.Event()
        self._log = get_logger("ingestor.session", exchange=self._info.name)
        self._tasks: set[asyncio.Task[None]] = set()
        # Repairs asked for and not started yet: symbol -> earliest gap time (None = none).
        # One repair runs at a time and takes everything pending, so a burst of gaps (one per
        # product after a reconnect) costs one server-time call and one fetch per series.
        self._repairs_pending: dict[str, int | None] = {}
        self._repairing = False
        # The newest few live closes written: what the keep-warm rehearsal packs again.
        self._last_events: list[CandleClosed] = []

    @property
    def symbols(self) -> list[str]:
        return list(self._entries)

    # -- the run -----------------------------------------------------------------------------
    async def run(self) -> None:
        """Runs until the feed fails (raises TransientError) or the task is cancelled."""
        feed = await self._adapter.open_feed(self.symbols, sorted(self._stored_native))
        self._feed = feed
        try:
            await self._status.set_state("connected", detail={"symbols": len(self._entries)})
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._consume(feed))
                tg.create_task(self._stall_watch())
                tg.create_task(self._write_loop())
                tg.create_task(self._backfill_then_release(self.symbols))
                tg.create_task(
                    keep_warm(
                        asyncio.Event(),  # it ends with the session's task group
                        self._cache.redis,
                        period_ms=self._settings.common.keep_warm_ms,
                        rehearse=self._rehearse,
                        touch=lambda: touch_sorted_sets(self._cache.candle_keys(self._last_events)),
                        activity=lambda: self.counters.announced,
                    )
                )
        except* TransientError as group:
            raise group.exceptions[0] from None
        finally:
            self._feed = None
            for task in self._tasks:
                task.cancel()
            await feed.aclose()

    async def _backfill_then_release(self, symbols: Sequence[str]) -> None:
        await self.backfill(symbols)
        self._ready.set()

    async def _consume(self, feed: Feed) -> None:
        loop = asyncio.get_running_loop()
        iterator = aiter(feed)
        raise_if_cancelled()
        while True:
            self._waiting_since = loop.time()
            try:
                event = await anext(iterator)
            except StopAsyncIteration:
                raise TransientError("feed ended") from None
            self._waiting_since = None
            if type(event) is ClosedCandle and not self._queue.full():
                self._queue.put_nowait(self._on_closed(event))  # the hot case, no coroutine
            else:
                await self._on_event(event)
                # Only the slow path awaits library calls that may swallow a cancellation.
                raise_if_cancelled()

    async def _stall_watch(self) -> None:
        """Raise when `_consume` has waited too long for the feed's next event (one watchdog:
        a timeout per event costs more than the rest of its handling at 100,000+ frames/s)."""
        stall = self._settings.stall_timeout_s or (
            3 * self._adapter.capabilities.expected_message_interval_s
        )
        loop = asyncio.get_running_loop()
        while True:
            since = self._waiting_since
            idle = 0.0 if since is None else loop.time() - since
            if idle >= stall:
                raise TransientError(f"feed stalled: nothing received for {stall:.1f}s")
            await asyncio.sleep(stall - idle)

    def _on_closed(self, event: ClosedCandle) -> tuple[ClosedCandle, int]:
        """Count a closed candle and stamp the local time it was received."""
        self.counters.closed += 1
        if event.exchange_time > self._exchange_time:
            self._exchange_time = event.exchange_time
        return event, int(time.time() * 1000)

    async def _on_event(self, event: Any) -> None:
        if isinstance(event, ClosedCandle):
            await self._queue.put(self._on_closed(event))  # waits while the writer is behind
        elif isinstance(event, Heartbeat):
            if event.exchange_time:
                self._exchange_time = max(self._exchange_time, event.exchange_time)
            now = time.monotonic()
            if now >= self._next_beat_write:
                # At most one status write per _BEAT_WRITE_S: a venue clock running faster than
                # real time (the simulator's firehose) sends hundreds of heartbeats a second.
                self._next_beat_write = now + _BEAT_WRITE_S
                await self._status.heartbeat(event.exchange_time)
            if self._ready.is_set():
                await self._finalize(self._higher.on_clock(self._exchange_time))
        elif isinstance(event, FeedGap):
            self.counters.gaps += 1
            self._log.warning("feed gap; repairing from REST", reason=event.reason)
            # Repair from the bucket before the one in progress at the gap: later live closes
            # must not hide a hole behind them if the repair has to be retried.
            since = self._exchange_time or None
            self._request_repair(event.symbols or self.symbols, since_ms=since)
        elif isinstance(event, FeedDropped):
            self.counters.dropped += 1
            if self.counters.dropped <= 10 or self.counters.dropped % 1000 == 0:
                self._log.warning("frame dropped", reason=event.reason, total=self.counters.dropped)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _request_repair(self, symbols: Sequence[str], *, since_ms: int | None = None) -> None:
        """Queue a repair of these symbols (from `since_ms` when given); starts the repairer."""
        pending = self._repairs_pending
        for symbol in symbols:
            if symbol in pending:
                known = pending[symbol]
                if since_ms is not None and (known is None or since_ms < known):
                    pending[symbol] = since_ms
            else:
                pending[symbol] = since_ms
        if not self._repairing:
            self._repairing = True
            self._spawn(self._repair_pending())

    async def _repair_pending(self) -> None:
        """Run the pending repairs, a batch at a time, until none is left."""
        try:
            while self._repairs_pending:
                batch, self._repairs_pending = self._repairs_pending, {}
                gaps = [t for t in batch.values() if t is not None]
                # One window start for the batch: the earliest gap. Reaching back further for
                # some series costs nothing more (still one page per series).
                await self._backfill_until_done(list(batch), since_ms=min(gaps, default=None))
        finally:
            self._repairing = False

    async def _backfill_until_done(
        self, symbols: Sequence[str], *, since_ms: int | None = None
    ) -> None:
        """`backfill`, retried with backoff until it succeeds (or the session ends)."""
        delay = _REPAIR_RETRY_S
        attempt = 1
        while True:
            try:
                await self.backfill(symbols, since_ms=since_ms)
                return
            except Exception as exc:  # any failure is retried, never dropped
                raise_if_cancelled()
                self.counters.repair_retries += 1
                self._log.warning(
                    "repair failed; retrying",
                    error=str(exc),
                    attempt=attempt,
                    in_s=delay,
                    symbols=len(symbols),
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _REPAIR_RETRY_MAX_S)
            attempt += 1

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.warning("background repair failed", error=str(task.exception()))

    # -- writes ------------------------------------------------------------------------------
    def _closed_event(
        self, symbol: str, tf: str, candle: Candle, exchange_time: int, received_at: int = 0
    ) -> CandleClosed:
        entry = self._entries.get(symbol) or SymbolEntry(symbol=symbol)
        return CandleClosed(
            exchange_id=self._info.id,
            exchange=self._info.name,
            symbol=symbol,
            timeframe=tf,
            timestamp=candle.timestamp,
            open=candle.open,
            high=candle.high,
            low=candle.low,
            close=candle.close,
            volume=candle.volume,
            exchange_time=exchange_time,
            tier=entry.tier,
            user_ids=entry.user_ids if entry.tier == 2 else (),
            received_at=received_at or int(time.time() * 1000),
        )

    async def _write_loop(self) -> None:
        """Live closes in batches, pipelined: up to `_IN_FLIGHT` batches are sent before the
        oldest one's replies are read (Redis always has the next one while this process builds
        more), on one connection, so batches are applied in order. Nothing waits unsettled when
        the queue is empty (latency), nor before higher timeframes read the base candles just
        written."""
        await self._ready.wait()
        queue = self._queue
        async with self._cache.writer(legacy_user_ids=self._settings.legacy_user_ids) as out:
            while True:
                raise_if_cancelled()
                if out.pending and queue.empty():
                    self.counters.announced += await out.settle(-1)
                    continue
                batch = [await queue.get()]
                while len(batch) < _WRITE_BATCH and not queue.empty():
                    batch.append(queue.get_nowait())
                events, due = self._live_events(batch)
                await out.send(events)
                if events:
                    self._last_events = events[-_REHEARSED:]
                if due:
                    self.counters.announced += await out.settle(-1)
                    await self._finalize(due)
                elif out.pending >= _IN_FLIGHT:
                    self.counters.announced += await out.settle(1)

    def _rehearse(self) -> None:
        """The write path's CPU part once more, sending nothing (`livermore_common.warm`): pack
        the newest closes written as the writer would. The frames keep the feed's part warm."""
        if self._last_events:
            self._cache.pack_announce(
                self._last_events, legacy_user_ids=self._settings.legacy_user_ids
            )

    def _live_events(
        self, batch: list[tuple[ClosedCandle, int]]
    ) -> tuple[list[CandleClosed], list[DueBucket]]:
        """The events to announce for live closes (`_closed_event` inline), and the higher
        buckets they complete."""
        entries, stored, bases = self._entries, self._stored_native, self._bases
        ex_id, ex_name = self._info.id, self._info.name
        events: list[CandleClosed] = []
        due: list[DueBucket] = []
        for c, received in batch:
            symbol, tf = c.symbol, c.timeframe
            entry = entries.get(symbol)
            if entry is not None and tf in stored:
                k = c.candle
                events.append(
                    CandleClosed(
                        exchange_id=ex_id,
                        exchange=ex_name,
                        symbol=symbol,
                        timeframe=tf,
                        timestamp=k.timestamp,
                        open=k.open,
                        high=k.high,
                        low=k.low,
                        close=k.close,
                        volume=k.volume,
                        exchange_time=c.exchange_time,
                        tier=entry.tier,
                        user_ids=entry.user_ids if entry.tier == 2 else (),
                        received_at=received,
                    )
                )
            if tf in bases:
                due += self._higher.on_base_closed(symbol, tf, c.candle.timestamp)
        return events, due

    async def _announce(self, events: list[CandleClosed]) -> int:
        if not events:
            return 0
        return await self._cache.announce_closed_many(
            events, legacy_user_ids=self._settings.legacy_user_ids
        )

    async def _finalize(self, due: Iterable[DueBucket]) -> None:
        """Combine due higher buckets from stored members, repairing missing members by REST."""
        for bucket in due:
            if bucket.symbol not in self._entries:
                continue
            members = await self._stored(
                bucket.symbol, bucket.base_timeframe, bucket.start, bucket.end
            )
            if len(members) < bucket.members:
                members = await self._repair(bucket, members)
            candle = combine(members, bucket.start)
            if candle is not None:
                event = self._closed_event(
                    bucket.symbol, bucket.timeframe, candle, self._exchange_time
                )
                self.counters.announced += await self._announce([event])

    async def _stored(self, symbol: str, tf: str, start: int, end: int) -> list[Candle]:
        entry = self._entries.get(symbol) or SymbolEntry(symbol=symbol)
        user = entry.user_ids[0] if entry.tier == 2 and entry.user_ids else None
        return await self._cache.read_candles(
            self._info.id,
            symbol,
            tf,
            tier=entry.tier if user else 1,
            user_id=user,
            start_ms=start,
            end_ms=end - 1,
        )

    async def _repair(self, bucket: DueBucket, have: list[Candle]) -> list[Candle]:
        """Fetch the bucket's lower candles by REST; announce those we lacked (they were lost)."""
        try:
            fetched = await self._adapter.fetch_candles(
                bucket.symbol, bucket.base_timeframe, bucket.start, bucket.end
            )
        except TransientError as exc:
            self._log.warning("repair failed; using stored members", error=str(exc))
            return have
        known = {c.timestamp for c in have}
        missing = [c for c in fetched if c.timestamp not in known]
        if missing:
            now = self._exchange_time
            events = [
                self._closed_event(bucket.symbol, bucket.base_timeframe, c, now) for c in missing
            ]
            self.counters.backfilled += await self._announce(events)
        return sorted([*have, *missing], key=lambda c: c.timestamp)

    # -- backfill ----------------------------------------------------------------------------
    async def backfill(self, symbols: Sequence[str], *, since_ms: int | None = None) -> None:
        """Fetch every missing closed candle of these symbols for every tracked timeframe.

        Normally that is everything after the newest stored candle; with `since_ms` (a gap seen
        at that venue time) the window also reaches back to the bucket before the one in
        progress then, so a hole behind candles stored since is filled too (buckets already
        stored are skipped by the cache, and announced only once)."""
        now = await self._adapter.server_time()
        self._exchange_time = max(self._exchange_time, now)
        series = [(s, tf) for s in symbols for tf in self._settings.timeframes]
        progress = Progress(len(series), label=f"backfill {self._info.name}")
        limit = asyncio.Semaphore(self._settings.backfill_concurrency)

        async def one(symbol: str, tf: str) -> None:
            async with limit:
                n = await self._backfill_series(symbol, tf, now, since_ms)
            progress.step(n)

        async with asyncio.TaskGroup() as tg:
            for symbol, tf in series:
                tg.create_task(one(symbol, tf))

    async def _backfill_series(
        self, symbol: str, tf: str, now: int, since_ms: int | None = None
    ) -> int:
        entry = self._entries.get(symbol) or SymbolEntry(symbol=symbol)
        user = entry.user_ids[0] if entry.tier == 2 and entry.user_ids else None
        latest = await self._cache.latest_timestamp(
            self._info.id, symbol, tf, tier=entry.tier if user else 1, user_id=user
        )
        if since_ms is not None and latest is not None and tf in self._stored_native:
            # Only what the feed streams can have a hole from a feed gap; the other timeframes
            # are combined from those (or fetched when their time comes), so their window is
            # unchanged and a repair costs one call per streamed series, not per timeframe.
            step = interval_ms(tf)
            latest = min(latest, since_ms - since_ms % step - 2 * step)
        window = backfill_window(
            latest_stored=latest, now_ms=now, timeframe=tf, history=self._settings.history_candles
        )
        if window is None:
            return 0
        candles = await self._fetch_patiently(symbol, tf, *window)
        events = [self._closed_event(symbol, tf, c, now) for c in candles]
        written = await self._announce(events)
        self.counters.backfilled += written
        return written

    async def _fetch_patiently(self, symbol: str, tf: str, start: int, end: int) -> list[Candle]:
        """`_fetch_for`, waiting out the venue's Retry-After on rate limiting (a few times)."""
        for _ in range(_RATE_LIMIT_RETRIES):
            try:
                return await self._fetch_for(symbol, tf, start, end)
            except RateLimitedError as exc:
                self.counters.rate_limited += 1
                await asyncio.sleep(max(0.05, exc.retry_after))
        return await self._fetch_for(symbol, tf, start, end)

    async def _fetch_for(self, symbol: str, tf: str, start: int, end: int) -> list[Candle]:
        """REST candles of `tf`; a timeframe the REST API lacks is combined from a divisor."""
        caps = self._adapter.capabilities
        if tf in caps.rest_timeframes:
            return await self._adapter.fetch_candles(symbol, tf, start, end)
        source = max(
            (r for r in caps.rest_timeframes if interval_ms(tf) % interval_ms(r) == 0),
            key=interval_ms,
        )
        lower = await self._adapter.fetch_candles(symbol, source, start, end)
        step = interval_ms(tf)
        buckets: dict[int, list[Candle]] = {}
        for c in lower:
            buckets.setdefault(c.timestamp - c.timestamp % step, []).append(c)
        combined = (combine(members, start_) for start_, members in sorted(buckets.items()))
        return [c for c in combined if c is not None]

    def request_backfill(self, symbols: Sequence[str]) -> None:
        """Backfill these symbols in the background (the `force-backfill` command)."""
        self._request_repair(symbols)

    # -- live changes ------------------------------------------------------------------------
    async def update_entries(self, entries: Sequence[SymbolEntry]) -> None:
        """Follow a new owned symbol list live: resubscribe, backfill what was gained."""
        new = {e.symbol: e for e in entries}
        gained = [s for s in new if s not in self._entries]
        lost = [s for s in self._entries if s not in new]
        self._entries = new
        self._higher.forget(lost)
        if self._feed is not None and (gained or lost):
            await self._feed.update_symbols(list(new))
        if gained:
            self._request_repair(gained)

    async def stop_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
