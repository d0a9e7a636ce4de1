"""The alert evaluator's batch logic: indicator updates in, alerts out, each exactly once.

Per series, updates are evaluated in order against the stored alert state (previous value,
cooldowns, excursion flags). The new state and the alerts' publications (exchange channel and the
durable alert stream) are committed in one atomic compare-and-set, so each alert is published
once; a crash before the commit replays the same decisions (deterministic ids), one after it finds
them done. `alert_history` is written from the durable alert stream by the history writer
(`history.py`, its own consumer group), not on this path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from livermore_common import messages
from livermore_common.keys import KeySpace
from livermore_common.messages import Alert, IndicatorUpdate
from livermore_common.streams import StreamEntry
from livermore_common.timeframes import interval_ms
from livermore_common.warm import TOUCHED_KEYS, touch_hashes

from .rules import (
    NEGATIVE_LEVELS,
    AlertDecision,
    AlertState,
    evaluate_update,
    level_label,
    to_alert,
)
from .store import AlertStateStore, Commit, ContextSpec, Publication

SeriesId = tuple[int, str, str]
Notifier = Callable[[Alert], None]
_MAX_CAS_RETRIES = 5
_STATE_CACHE_LIMIT = 100_000
# (state key, channel, stored ts, stored state, new state, decisions per update)
_Planned = tuple[
    str, str, str, bytes, AlertState, list[tuple[IndicatorUpdate, list[AlertDecision]]]
]


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
        notify: Notifier | None = None,
        context: bool = True,
        context_timeframes: Sequence[str] = ("1m", "5m", "15m", "1h", "4h", "1d"),
        order_wait_s: float = 2.0,
    ) -> None:
        self._order_wait_s = order_wait_s
        self._store = store
        self._keys = keys
        self._notify = notify
        self._context = context
        self._context_tfs = tuple(context_timeframes)
        self.stats = Stats()
        # state key -> (stored ts, stored bytes, the same decoded): last committed or read.
        self._states: dict[str, tuple[str, bytes | None, AlertState]] = {}
        # series -> (state key, alert channel), built once per series.
        self._names: dict[SeriesId, tuple[str, str]] = {}
        # The last update handled, as received: what `rehearse` replays; and the state keys
        # of the last batch's series, what `touch` reads.
        self._last_raw: bytes | None = None
        self._last_keys: list[str] = []

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
        if entries:
            self._last_raw = entries[-1].data
            self._last_keys = [self._series_names(s)[0] for s in list(by_series)[:TOUCHED_KEYS]]

    def touch(self) -> bytes | None:
        """The keep-warm's Redis call: a read of the alert states the last batch committed."""
        return touch_hashes(self._last_keys)

    def rehearse(self) -> None:
        """The hot path once more, writing nothing (`livermore_common.warm`): decode the last
        update handled, evaluate the update after it against a copy of its series' remembered
        state, build an alert from it as if one were raised, and pack the commit call."""
        raw = self._last_raw
        if raw is None:
            return
        update = messages.decode(raw, IndicatorUpdate)
        key, channel = self._series_names((update.exchange_id, update.symbol, update.timeframe))
        stored = self._states.get(key)
        if stored is None:
            return
        ts, blob, state = stored
        after = msgspec.structs.replace(
            update,
            timestamp=update.timestamp + interval_ms(update.timeframe),
            prev_timestamp=update.timestamp,
        )
        state, decided = _decide(state, [after])
        if not decided:
            decision = AlertDecision(
                label=level_label(NEGATIVE_LEVELS[0]),
                kind="level",
                direction="down",
                level=NEGATIVE_LEVELS[0],
                trigger_value=after.macd_v or 0.0,
                histogram=after.histogram,
                candle_timestamp=after.timestamp,
                triggered_at=after.exchange_time,
            )
            decided = [(after, [decision])]
        commits, _ = self._commits([(key, channel, ts, blob or b"", state, decided)])
        self._store.pack(commits)

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
        names = [self._series_names(series) for series, _ in items]
        stored = await self._load([key for key, _ in names])
        planned: list[_Planned] = []
        left: dict[str, tuple[SeriesId, list[IndicatorUpdate]]] = {}
        attempted: dict[str, tuple[SeriesId, list[IndicatorUpdate]]] = {}
        for (series, updates), (key, channel), (ts, blob, state) in zip(
            items, names, stored, strict=True
        ):
            ready, later = self._ready(state, updates, patient)
            if later:
                left[key] = (series, later)
                self._states.pop(key, None)  # the predecessor may be in Redis already: reload
            state, decided = _decide(state, ready)
            if state.last_timestamp is None or ts == str(state.last_timestamp):
                continue  # nothing new for this series (replays only, or all waiting)
            planned.append((key, channel, ts, blob or b"", state, decided))
            attempted[key] = (series, updates)
        if not planned:
            return list(left.values()), 0
        commits, per_item = self._commits(planned)
        results, contexts = await self._store.commit(commits)
        lost = self._remember(planned, commits, results)
        self._published(per_item, results, contexts)
        for key in lost:
            left[key] = attempted[key]  # redo the whole series from the new state
        return list(left.values()), len(lost)

    def _series_names(self, series: SeriesId) -> tuple[str, str]:
        names = self._names.get(series)
        if names is None:
            if len(self._names) >= _STATE_CACHE_LIMIT:
                self._names.clear()
            names = self._names[series] = (
                self._keys.alert_state_key(*series),
                self._keys.alerts_channel(series[0]),
            )
        return names

    async def _load(self, state_keys: list[str]) -> list[tuple[str, bytes | None, AlertState]]:
        """Stored (ts, state bytes, state) per key: what this evaluator last committed or read,
        else from Redis. A remembered state is only the commit's expectation, checked by the store
        (ts and bytes), so a series another evaluator moved on is reloaded and redone."""
        states = self._states
        missing = [key for key in state_keys if key not in states]
        if missing:
            if len(states) + len(missing) > _STATE_CACHE_LIMIT:
                states.clear()
            for key, (ts, blob) in zip(missing, await self._store.load(missing), strict=True):
                states[key] = (ts, blob, AlertState.from_bytes(blob) if blob else AlertState())
        return [states[key] for key in state_keys]

    def _remember(
        self, planned: list[_Planned], commits: list[Commit], results: list[bool]
    ) -> set[str]:
        """Remember committed states; forget (to reload) those that lost; return the losers."""
        lost: set[str] = set()
        for plan, (key, _, _, _, new_ts, blob, _), ok in zip(
            planned, commits, results, strict=True
        ):
            if ok:
                self._states[key] = (str(new_ts), blob, plan[4])
            else:
                self._states.pop(key, None)
                lost.add(key)
        return lost

    def _commits(self, planned: list[_Planned]) -> tuple[list[Commit], list[list[Alert]]]:
        """The store's commit items, and each item's alerts (without their context: the store's
        script reads it and completes the payloads)."""
        commits: list[Commit] = []
        per_item: list[list[Alert]] = []
        for key, channel, ts, blob, state, decided in planned:
            alerts: list[Alert] = []
            publications: list[Publication] = []
            for update, decisions in decided:
                spec = self._context_spec(update)
                for decision in decisions:
                    alert = to_alert(decision, update)
                    alerts.append(alert)
                    publications.append(Publication(messages.encode(alert), spec))
            commits.append(
                (key, channel, ts, blob, state.last_timestamp or 0, state.to_bytes(), publications)
            )
            per_item.append(alerts)
        return commits, per_item

    def _context_spec(self, update: IndicatorUpdate) -> ContextSpec | None:
        """The stages the context reads (DOMAIN.md §6): the symbol's other timeframes."""
        if not self._context:
            return None
        others = [
            (tf, self._keys.indicator_key(update.exchange_id, update.symbol, tf, update.type))
            for tf in self._context_tfs
            if tf != update.timeframe
        ]
        return ContextSpec(update.timeframe, update.stage, others)

    def _published(
        self, per_item: list[list[Alert]], results: list[bool], contexts: list[bytes]
    ) -> None:
        """Count the alerts that were published and hand them (with the context the script
        gave them) to the notifier."""
        ctx = iter(contexts)
        for alerts, ok in zip(per_item, results, strict=True):
            if not ok:
                continue
            for alert in alerts:
                self.stats.alerts += 1
                context = messages.decode(next(ctx), dict[str, Any]) if self._context else None
                if self._notify is not None:
                    self._notify(msgspec.structs.replace(alert, context=context))


def _decide(
    state: AlertState, updates: list[IndicatorUpdate]
) -> tuple[AlertState, list[tuple[IndicatorUpdate, list[AlertDecision]]]]:
    """Apply the rules to a series' updates in order: the new state and each update's decisions."""
    decided: list[tuple[IndicatorUpdate, list[AlertDecision]]] = []
    for update in updates:
        state, decisions = evaluate_update(state, update)
        if decisions:
            decided.append((update, decisions))
    return state, decided
