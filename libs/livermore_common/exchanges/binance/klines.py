"""Close detection for Binance kline streams (pure: no I/O).

A kline is final when `k.x` is true. If that frame was lost, the first frame of a later bucket
(`k.t` moves on) closes the previous one with the last update seen, and a `FeedGap` asks the
caller to verify it by REST; a jump over whole buckets is a gap too. Frames for an older bucket, or
repeats of a bucket already closed, are ignored: that is what makes the overlap of two sockets
during a make-before-break rotation harmless.
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

    def forget(self, symbol: str, timeframe: str) -> None:
        self._streams.pop((symbol, timeframe), None)

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
        key = (symbol, timeframe)
        st = self._streams.get(key)
        open_time = candle.timestamp
        if st is None or open_time > st.open_time:
            events = (
                [] if st is None else self._superseded(st, symbol, timeframe, open_time, event_time)
            )
            self._streams[key] = _Stream(
                open_time, close_time - open_time + 1, candle, event_time, final
            )
            if final:
                events.append(self._close(symbol, timeframe, candle, event_time))
            return events
        if open_time < st.open_time or st.closed or event_time < st.event_time:
            return []  # stale, a repeat after the final frame, or an older update
        st.candle = candle
        st.event_time = event_time
        if final:
            st.closed = True
            return [self._close(symbol, timeframe, candle, event_time)]
        return []

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
