"""The alert evaluator's batch logic: indicator updates in, alerts out, each exactly once.

Per series, updates are evaluated in order against the stored alert state (previous value,
cooldowns, excursion flags). Alerts are first recorded in `alert_history` (idempotent by id), then
the new state and the publications are committed atomically; a crash between the two replays the
same decisions, which the history ignores and the channel receives once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import redis.asyncio as aioredis

from livermore_common import messages
from livermore_common.keys import KeySpace
from livermore_common.messages import Alert, IndicatorUpdate
from livermore_common.streams import StreamEntry

from .rules import AlertState, evaluate_update, timeframe_bias, to_alert
from .store import AlertStateStore

SeriesId = tuple[int, str, str]
Recorder = Callable[[Sequence[Alert]], Awaitable[None]]
Notifier = Callable[[Alert], None]
_MAX_CAS_RETRIES = 5


class Stats:
    def __init__(self) -> None:
        self.updates = 0
        self.alerts = 0
        self.cas_retries = 0
        self.order_waits = 0


class AlertEvaluator:
    def __init__(
        self,
        *,
        store: AlertStateStore,
        keys: KeySpace,
        record: Recorder,
        notify: Notifier | None = None,
        context_timeframes: Sequence[str] = ("1m", "5m", "15m", "1h", "4h", "1d"),
        redis: aioredis.Redis | None = None,
        order_wait_s: float = 2.0,
    ) -> None:
        self._order_wait_s = order_wait_s
        self._store = store
        self._keys = keys
        self._record = record
        self._notify = notify
        self._context_tfs = tuple(context_timeframes)
        self._redis = redis
        self.stats = Stats()

    async def handle(self, entries: Sequence[StreamEntry]) -> None:
        by_series: dict[SeriesId, list[IndicatorUpdate]] = {}
        for entry in entries:
            update = messages.decode(entry.data, IndicatorUpdate)
            by_series.setdefault((update.exchange_id, update.symbol, update.timeframe), []).append(
                update
            )
        self.stats.updates += len(entries)
        pending = list(by_series.items())
        cas_rounds = 0
        deadline = time.monotonic() + self._order_wait_s
        while pending:
            patient = time.monotonic() < deadline
            pending, lost = await self._round(pending, patient=patient)
            cas_rounds += lost
            if cas_rounds > _MAX_CAS_RETRIES * max(1, len(by_series)):
                raise RuntimeError(f"alert state kept changing under {len(pending)} series")
            self.stats.cas_retries += lost
            if pending and not lost:
                # Waiting for another evaluator to commit an earlier update of these series.
                self.stats.order_waits += 1
                await asyncio.sleep(0.02)

    def _ready(
        self, state: AlertState, updates: list[IndicatorUpdate], patient: bool
    ) -> tuple[list[IndicatorUpdate], list[IndicatorUpdate]]:
        """Split a series' updates into those that follow the stored state without a hole, and
        the rest (whose predecessor another evaluator has not committed yet)."""
        if not patient:
            return updates, []
        last = state.last_timestamp
        for i, update in enumerate(updates):
            expected = last if i == 0 else updates[i - 1].timestamp
            prev = update.prev_timestamp
            if prev is not None and (expected is None or prev > expected):
                # Its predecessor has not been evaluated yet (by us or by another evaluator).
                return updates[:i], updates[i:]
        return updates, []

    async def _round(
        self, items: list[tuple[SeriesId, list[IndicatorUpdate]]], *, patient: bool
    ) -> tuple[list[tuple[SeriesId, list[IndicatorUpdate]]], int]:
        """One pass; returns what is left (CAS losers and updates waiting for a predecessor) and
        how many series lost the CAS."""
        state_keys = [self._keys.alert_state_key(*series) for series, _ in items]
        stored = await self._store.load(state_keys)
        commits = []
        all_alerts: list[Alert] = []
        left: dict[str, tuple[SeriesId, list[IndicatorUpdate]]] = {}
        attempted: dict[str, tuple[SeriesId, list[IndicatorUpdate]]] = {}
        for (series, updates), key, (ts, blob) in zip(items, state_keys, stored, strict=True):
            state = AlertState.from_bytes(blob) if blob else AlertState()
            ready, later = self._ready(state, updates, patient)
            if later:
                left[key] = (series, later)
            state, alerts = await self._evaluate(state, ready)
            if state.last_timestamp is None or ts == str(state.last_timestamp):
                continue  # nothing new for this series (replays only, or all waiting)
            channel = self._keys.alerts_channel(series[0])
            encoded = [messages.encode(a) for a in alerts]
            commits.append((key, channel, ts, state.last_timestamp, state.to_bytes(), encoded))
            attempted[key] = (series, updates)
            all_alerts += alerts
        if not commits:
            return list(left.values()), 0
        if all_alerts:
            await self._record(all_alerts)
        results = await self._store.commit(commits)
        lost = {c[0] for c, ok in zip(commits, results, strict=True) if not ok}
        self._published(all_alerts, lost)
        for key in lost:
            left[key] = attempted[key]  # redo the whole series from the new state
        return list(left.values()), len(lost)

    async def _evaluate(
        self, state: AlertState, updates: list[IndicatorUpdate]
    ) -> tuple[AlertState, list[Alert]]:
        alerts: list[Alert] = []
        for update in updates:
            state, decisions = evaluate_update(state, update)
            if decisions:
                context = await self._context(update)
                alerts += [to_alert(d, update, context=context) for d in decisions]
        return state, alerts

    def _published(self, alerts: list[Alert], lost: set[str]) -> None:
        for alert in alerts:
            key = self._keys.alert_state_key(
                alert.source_exchange_id, alert.symbol, alert.timeframe
            )
            if key not in lost:
                self.stats.alerts += 1
                if self._notify is not None:
                    self._notify(alert)

    async def _context(self, update: IndicatorUpdate) -> dict[str, object] | None:
        """Stages of the symbol's other timeframes and the weighted bias (DOMAIN.md §6)."""
        if self._redis is None:
            return None
        tfs = [tf for tf in self._context_tfs if tf != update.timeframe]
        names = [
            self._keys.indicator_key(update.exchange_id, update.symbol, tf, update.type)
            for tf in tfs
        ]
        raws = await self._redis.mget(names) if names else []
        stages = {update.timeframe: update.stage}
        for tf, raw in zip(tfs, raws, strict=True):
            if raw:
                stages[tf] = messages.decode(raw, IndicatorUpdate).stage
        bias = timeframe_bias(stages)
        return {"stages": stages, "bias": bias.bias}
