"""Close detection for Binance kline streams (pure: no I/O).

A kline is final when `k.x` is true. If that frame was lost, the first frame of a later bucket
(`k.t` moves on) closes the previous one with the last update seen, and a `FeedGap` asks the
caller to verify it by REST; a jump over whole buckets is a gap too. Frames for an older bucket, or
repeats of a bucket already closed, are ignored: that is what makes the overlap of two sockets
during a make-before-break rotation harmless. A stream whose first frame is for a bucket later
than the one in progress when it was subscribed (`expect`) missed closes in between: a gap too.
"""

from __future__ import annotations

from dataclasses import dataclass

from livermore_common.exchanges.base import ClosedCandle, FeedEvent, FeedGap
from livermore_common.messages import Candle


@dataclass(slots=True)
class _Stream:
    open_time: int
    interval: int
    candle: Candle
    event_time: int
    closed: bool


class KlineTracker:
    """The forming kline of every (symbol, timeframe) stream."""

    def __init__(self) -> None:
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._since: dict[tuple[str, str], int] = {}

    def expect(self, symbol: str, timeframe: str, since_ms: int) -> None:
        """The stream was subscribed at venue time `since_ms` (the caller backfilled to there)."""
        if (symbol, timeframe) not in self._streams:
            self._since[(symbol, timeframe)] = since_ms

    def forget(self, symbol: str, timeframe: str) -> None:
        self._streams.pop((symbol, timeframe), None)
        self._since.pop((symbol, timeframe), None)

    def on_kline(
        self,
        symbol: str,
        timeframe: str,
        candle: Candle,
        *,
        close_time: int,
        final: bool,
        event_time: int,
    ) -> list[FeedEvent]:
        return self.update((symbol, timeframe), candle, close_time, final, event_time) or []

    def update(
        self, key: tuple[str, str], candle: Candle, close_time: int, final: bool, event_time: int
    ) -> list[FeedEvent] | None:
        """`on_kline` for the live feed's hot path: the stream as its (symbol, timeframe) key,
        None when nothing happened (three frames in four)."""
        st = self._streams.get(key)
        open_time = candle.timestamp
        if st is not None and open_time == st.open_time:  # the bucket in progress: the common case
            if st.closed or event_time < st.event_time:
                return None  # a repeat after the final frame, or an older update
            st.candle = candle
            st.event_time = event_time
            if not final:
                return None
            st.closed = True
            return [self._close(key[0], key[1], candle, event_time)]
        symbol, timeframe = key
        if st is None or open_time > st.open_time:
            interval = close_time - open_time + 1
            if st is None:
                events = self._first(key, open_time, interval)
            else:
                events = self._superseded(st, symbol, timeframe, open_time, event_time)
            self._streams[key] = _Stream(open_time, interval, candle, event_time, final)
            if final:
                events.append(self._close(symbol, timeframe, candle, event_time))
            return events
        return None  # a stale frame (an older bucket)

    def _first(self, key: tuple[str, str], open_time: int, interval: int) -> list[FeedEvent]:
        since = self._since.pop(key, None)
        if since is None or interval <= 0 or open_time <= since - since % interval:
            return []
        return [
            FeedGap(reason=f"{key[1]} klines closed before the stream began", symbols=(key[0],))
        ]

    def _superseded(
        self, st: _Stream, symbol: str, timeframe: str, new_open: int, event_time: int
    ) -> list[FeedEvent]:
        events: list[FeedEvent] = []
        if not st.closed:
            events.append(self._close(symbol, timeframe, st.candle, event_time))
            events.append(FeedGap(reason=f"final {timeframe} kline missed", symbols=(symbol,)))
        elif new_open > st.open_time + st.interval:
            events.append(FeedGap(reason=f"{timeframe} klines skipped", symbols=(symbol,)))
        return events

    @staticmethod
    def _close(symbol: str, timeframe: str, candle: Candle, event_time: int) -> ClosedCandle:
        return ClosedCandle(
            symbol=symbol, timeframe=timeframe, candle=candle, exchange_time=event_time
        )
