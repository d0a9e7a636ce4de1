"""The indicator worker's batch logic: closed candles in, MACD-V updates out, exactly once.

Per series, events are applied in order to the stored incremental state. The state is rebuilt from
the stored candle history (the exact from-scratch computation) when it is missing, when an older
candle arrives after newer ones, or when stored candles exist that the state has not seen. A
duplicate (timestamp already applied) changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from livermore_common import messages
from livermore_common.indicators import MacdVPoint, MacdVState
from livermore_common.keys import KeySpace
from livermore_common.logs import get_logger
from livermore_common.messages import Candle, CandleClosed, IndicatorUpdate
from livermore_common.streams import StreamEntry
from livermore_common.timeframes import interval_ms

from .store import SeriesCommit, StateStore

INDICATOR_TYPE = "macd-v"
# (event, newest timestamp wanted, oldest timestamp wanted or None) -> stored closed candles.
CandleReader = Callable[[CandleClosed, int, int | None], Awaitable[list[Candle]]]
SeriesId = tuple[int, str, str]
_MAX_CAS_RETRIES = 5
_NAME_CACHE_LIMIT = 100_000
_STATE_CACHE_LIMIT = 100_000


def to_update(
    event: CandleClosed, point: MacdVPoint, prev_timestamp: int | None = None
) -> IndicatorUpdate:
    return IndicatorUpdate(
        exchange_id=event.exchange_id,
        exchange=event.exchange,
        symbol=event.symbol,
        timeframe=event.timeframe,
        type=INDICATOR_TYPE,
        timestamp=point.timestamp,
        macd_v=point.macd_v,
        signal=point.signal,
        histogram=point.histogram,
        fast_ema=point.fast_ema,
        slow_ema=point.slow_ema,
        atr=point.atr,
        stage=point.stage,
        seeded=point.seeded,
        n_eff=point.n_eff,
        gap_ratio=point.gap_ratio,
        liquidity=point.liquidity,
        price=point.close,
        reason=point.reason,
        exchange_time=event.exchange_time,
        tier=event.tier,
        user_ids=event.user_ids,
        received_at=event.received_at,
        prev_timestamp=prev_timestamp,
    )


class Stats:
    def __init__(self) -> None:
        self.events = 0
        self.published = 0
        self.duplicates = 0
        self.rebuilds = 0
        self.cas_retries = 0


class IndicatorWorker:
    def __init__(
        self,
        *,
        store: StateStore,
        keys: KeySpace,
        read_candles: CandleReader,
        user_ttl_seconds: int = 86_400,
    ) -> None:
        self._store = store
        self._keys = keys
        self._read = read_candles
        self._ttl = user_ttl_seconds
        self.stats = Stats()
        self._log = get_logger("indicators")
        self._name_cache: dict[SeriesId, tuple[str, str, str]] = {}
        self._states: dict[str, tuple[str, bytes | None]] = {}

    async def handle(self, entries: Sequence[StreamEntry]) -> None:
        """Stream handler: decode, group by series (order kept), apply, commit with CAS."""
        by_series: dict[SeriesId, list[CandleClosed]] = {}
        for entry in entries:
            event = messages.decode(entry.data, CandleClosed)
            by_series.setdefault((event.exchange_id, event.symbol, event.timeframe), []).append(
                event
            )
        self.stats.events += len(entries)
        pending = list(by_series.items())
        for _ in range(_MAX_CAS_RETRIES):
            pending = await self._round(pending)
            if not pending:
                return
            self.stats.cas_retries += len(pending)
        raise RuntimeError(f"indicator state kept changing under {len(pending)} series; retrying")

    def _names(self, series: SeriesId) -> tuple[str, str, str]:
        """(state key, channel, indicator key) of a series, built (and validated) once."""
        names = self._name_cache.get(series)
        if names is None:
            if len(self._name_cache) >= _NAME_CACHE_LIMIT:
                self._name_cache.clear()
            ex, sym, tf = series
            names = self._name_cache[series] = (
                self._keys.indicator_state_key(ex, sym, tf, INDICATOR_TYPE),
                self._keys.indicator_channel(ex, sym, tf, INDICATOR_TYPE),
                self._keys.indicator_key(ex, sym, tf, INDICATOR_TYPE),
            )
        return names

    def _state_key(self, series: SeriesId) -> str:
        return self._names(series)[0]

    async def _round(
        self, items: list[tuple[SeriesId, list[CandleClosed]]]
    ) -> list[tuple[SeriesId, list[CandleClosed]]]:
        stored = await self._load([self._state_key(s) for s, _ in items])
        commits: list[tuple[str, str, SeriesCommit]] = []
        committed_items: list[tuple[SeriesId, list[CandleClosed]]] = []
        for (series, events), (ts, blob) in zip(items, stored, strict=True):
            commit = await self._apply(events, ts, blob)
            if commit is None:
                continue
            commit.expected_state = blob or b""
            state_key, channel, _ = self._names(series)
            commits.append((state_key, channel, commit))
            committed_items.append((series, events))
        if not commits:
            return []
        results = await self._store.commit(commits)
        for ok, (state_key, _, c) in zip(results, commits, strict=True):
            if ok:
                self.stats.published += len(c.updates)
                self._states[state_key] = (str(c.new_ts), c.state)
            else:
                self._states.pop(state_key, None)  # reload it for the retry
        return [item for ok, item in zip(results, committed_items, strict=True) if not ok]

    async def _load(self, state_keys: list[str]) -> list[tuple[str, bytes | None]]:
        """Stored (ts, state) per key: what this worker last committed or read, else from Redis.

        A remembered state saves a round trip on the latency path; it is only ever used as the
        commit's expectation, which the store checks against Redis (ts and state), so a series
        another worker moved on is simply reloaded and redone."""
        states = self._states
        missing = [key for key in state_keys if key not in states]
        if missing:
            if len(states) + len(missing) > _STATE_CACHE_LIMIT:
                states.clear()
            for key, value in zip(missing, await self._store.load(missing), strict=True):
                states[key] = value
        return [states[key] for key in state_keys]

    async def _apply(
        self, events: list[CandleClosed], stored_ts: str, blob: bytes | None
    ) -> SeriesCommit | None:
        state = MacdVState.from_bytes(blob) if blob else None
        updates: list[bytes] = []
        last: tuple[CandleClosed, MacdVPoint] | None = None
        for event in events:
            step = interval_ms(event.timeframe)
            if state is not None and event.timestamp == state.last_timestamp:
                self.stats.duplicates += 1
                continue
            if state is not None and event.timestamp < state.last_timestamp:
                # An older candle (a repaired gap, or a replay): recompute, publish nothing old.
                state, points = await self._rebuild(event, state.last_timestamp)
                fresh: list[MacdVPoint] = []
                prev = None
            elif state is None or (
                event.timestamp > state.last_timestamp + step
                and await self._has_unseen(event, state.last_timestamp)
            ):
                # Catch up: every stored candle the state has not applied gets its update now,
                # so events handled out of order by another worker lose nothing.
                since = -1 if state is None else state.last_timestamp
                state, points = await self._rebuild(event, event.timestamp)
                fresh = [p for p in points if p.timestamp > since]
                prev = _last_published_before(points, since)
            else:
                before = state.last_timestamp
                points = fresh = [state.update(event.candle())]
                prev = before if state.macd_count > 1 else None
            if points:
                last = (event, points[-1])
            for point in fresh:
                if point.macd_v is not None:
                    updates.append(messages.encode(to_update(event, point, prev)))
                    prev = point.timestamp
        if state is None or last is None:
            return None
        return self._commit(stored_ts, state, last[0], last[1], updates)

    def _commit(
        self,
        stored_ts: str,
        state: MacdVState,
        event: CandleClosed,
        point: MacdVPoint,
        updates: list[bytes],
    ) -> SeriesCommit:
        if event.tier == 2 and event.user_ids:
            keys = [
                self._keys.user_indicator_key(
                    u, event.exchange_id, event.symbol, event.timeframe, INDICATOR_TYPE
                )
                for u in event.user_ids
            ]
            ttl = self._ttl
        else:
            keys = [self._names((event.exchange_id, event.symbol, event.timeframe))[2]]
            ttl = 0
        return SeriesCommit(
            expected_ts=stored_ts,
            new_ts=state.last_timestamp,
            state=state.to_bytes(),
            indicator_json=messages.encode(to_update(event, point)),
            indicator_keys=keys,
            ttl=ttl,
            updates=updates,
        )

    async def _has_unseen(self, event: CandleClosed, last_ts: int) -> bool:
        between = await self._read(event, event.timestamp - 1, last_ts + 1)
        return bool(between)

    async def _rebuild(self, event: CandleClosed, upto: int) -> tuple[MacdVState, list[MacdVPoint]]:
        """From-scratch state over the stored closed candles up to `upto` (inclusive), with the
        point of every stored candle (synthetic gap bars produce none)."""
        self.stats.rebuilds += 1
        candles = await self._read(event, upto, None)
        stored_own = bool(candles) and candles[-1].timestamp == upto
        if upto == event.timestamp and not stored_own:
            # The event's own candle is not stored (e.g. trimmed): include it so it is not lost.
            candles = [c for c in candles if c.timestamp < upto] + [event.candle()]
        state = MacdVState(interval_ms=interval_ms(event.timeframe))
        return state, [state.update(c) for c in candles]


def _last_published_before(points: list[MacdVPoint], since: int) -> int | None:
    """Timestamp of the newest point at or before `since` that had a value (was published)."""
    for point in reversed(points):
        if point.timestamp <= since and point.macd_v is not None:
            return point.timestamp
    return None
