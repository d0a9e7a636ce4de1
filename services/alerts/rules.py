"""Pure alert rules of DOMAIN.md §6: level crossings, reversals, cooldowns, staleness, alert ids.

No I/O and no clock: time is the exchange's (candle timestamps for cooldowns, the exchange clock
for staleness), passed in, so a replay or a faster-than-real-time simulation raises exactly the
alerts real time would.

Choices the specification leaves open, made here:
- Levels alert only when MACD-V moves away from zero: down-crossings of the negative levels and
  up-crossings of the positive ones. This is what the specification's example table requires:
  (200, 190, -5.8) raises `reversal_overbought` alone, not also a down-crossing of +200; and a
  recovery from -160 to -140 is the reversal rules' business, not a new `level_-150`.
- Re-arming: one reversal per excursion, re-armed by the next level crossing on its side
  (a crossing of a negative level re-arms `reversal_oversold`, of a positive level
  `reversal_overbought`), even when that level alert is held back by its cooldown or staleness,
  so a new excursion is never missed because of an old one's cooldown.
- A reversal is disarmed only when it is actually raised. A level alert and a reversal may both
  be raised by one update.
- An update for a candle not newer than the last one evaluated changes nothing (replays).
- An undefined MACD-V resets the previous value: the next defined value is a "first value".
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Final, Literal

import msgspec

from livermore_common.messages import Alert, IndicatorUpdate
from livermore_common.timeframes import interval_ms as timeframe_interval_ms

NEGATIVE_LEVELS: Final = (-150, -200, -250, -300, -350, -400)
POSITIVE_LEVELS: Final = (150, 200, 250, 300, 350, 400)
OVERSOLD: Final = -150.0
OVERBOUGHT: Final = 150.0
# The histogram must exceed this share of |MACD-V| to count as a reversal while extreme.
OVERSOLD_BUFFER: Final = 0.05
OVERBOUGHT_BUFFER: Final = 0.03
COOLDOWN_MS: Final = 300_000
STALE_AFTER_INTERVALS: Final = 2
ALERT_TYPE: Final = "macdv"

Direction = Literal["down", "up"]
AlertKind = Literal["level", "reversal"]
BiasName = Literal["bullish", "bearish", "neutral"]
# (label, kind, direction, level) of an alert the rules would raise, before cooldown and staleness.
_Candidate = tuple[str, AlertKind, Direction, int | None]


class AlertState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Alert memory of one series (exchange, symbol, timeframe); survives restarts as bytes."""

    prev_macd_v: float | None = None
    # Candle timestamp of the last update evaluated; older or equal ones are replays.
    last_timestamp: int | None = None
    # Label -> candle timestamp (exchange ms) of the last alert raised with it, while cooling down.
    cooldowns: dict[str, int] = {}
    oversold_armed: bool = True
    overbought_armed: bool = True

    def to_bytes(self) -> bytes:
        return _encoder.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> AlertState:
        return _decoder.decode(data)


class AlertDecision(msgspec.Struct, frozen=True, kw_only=True):
    """One alert to raise; the service adds the series identity and publishes it."""

    label: str
    kind: AlertKind
    direction: Direction
    level: int | None
    trigger_value: float
    histogram: float | None
    candle_timestamp: int
    triggered_at: int


def level_label(level: int) -> str:
    return f"level_{level}"


def crossed_levels(prev: float, cur: float) -> list[tuple[Direction, int]]:
    """Levels crossed moving away from zero: the deepest negative level crossed downwards
    (`prev >= L > cur`) or the highest positive level crossed upwards (`prev <= L < cur`).

    A single move has one direction, so at most one level comes back.
    """
    down = [level for level in NEGATIVE_LEVELS if prev >= level > cur]
    if down:
        return [("down", min(down))]
    up = [level for level in POSITIVE_LEVELS if prev <= level < cur]
    if up:
        return [("up", max(up))]
    return []


def is_stale(candle_timestamp: int, interval_ms: int, exchange_time: int) -> bool:
    """True when the candle closed more than two intervals before the exchange's current time."""
    closed_at = candle_timestamp + interval_ms
    return exchange_time - closed_at > STALE_AFTER_INTERVALS * interval_ms


def evaluate(
    state: AlertState,
    *,
    macd_v: float | None,
    histogram: float | None,
    candle_timestamp: int,
    interval_ms: int,
    exchange_time: int,
    cooldown_ms: int = COOLDOWN_MS,
) -> tuple[AlertState, list[AlertDecision]]:
    """Apply the rules to one new MACD-V value of a series; return the new state and alerts.

    `exchange_time` is the exchange's clock when the candle's close was known; a value of 0 or
    less means "unknown" and the candle counts as fresh (its close time stands in).
    """
    ts = candle_timestamp
    if state.last_timestamp is not None and ts <= state.last_timestamp:
        return state, []
    prev = state.prev_macd_v
    if macd_v is None or math.isnan(macd_v) or prev is None:
        value = None if macd_v is None or math.isnan(macd_v) else macd_v
        return msgspec.structs.replace(state, prev_macd_v=value, last_timestamp=ts), []
    crossings = crossed_levels(prev, macd_v)
    armed = {
        "reversal_oversold": state.oversold_armed or any(lv < 0 for _, lv in crossings),
        "reversal_overbought": state.overbought_armed or any(lv > 0 for _, lv in crossings),
    }
    candidates: list[_Candidate] = [
        (level_label(level), "level", direction, level) for direction, level in crossings
    ]
    reversal = _reversal(prev, macd_v, histogram)
    if reversal is not None and armed[reversal[0]]:
        candidates.append((reversal[0], "reversal", reversal[1], None))
    now = exchange_time if exchange_time > 0 else ts + interval_ms
    fresh = not is_stale(ts, interval_ms, now)
    cooldowns = {label: t for label, t in state.cooldowns.items() if ts - t < cooldown_ms}
    raised = [
        _decision(c, macd_v, histogram, ts, now)
        for c in candidates
        if fresh and c[0] not in cooldowns
    ]
    for decision in raised:
        cooldowns[decision.label] = ts
        if decision.kind == "reversal":
            armed[decision.label] = False
    new_state = AlertState(
        prev_macd_v=macd_v,
        last_timestamp=ts,
        cooldowns=cooldowns,
        oversold_armed=armed["reversal_oversold"],
        overbought_armed=armed["reversal_overbought"],
    )
    return new_state, raised


def _decision(
    candidate: _Candidate, value: float, histogram: float | None, ts: int, now: int
) -> AlertDecision:
    label, kind, direction, level = candidate
    return AlertDecision(
        label=label,
        kind=kind,
        direction=direction,
        level=level,
        trigger_value=value,
        histogram=histogram,
        candle_timestamp=ts,
        triggered_at=now,
    )


def _reversal(prev: float, cur: float, histogram: float | None) -> tuple[str, Direction] | None:
    """A reversal while extreme: both values beyond ±150 and the histogram turning by a margin."""
    if histogram is None or math.isnan(histogram):
        return None
    buffer_up = OVERSOLD_BUFFER * abs(cur)
    if prev < OVERSOLD and cur < OVERSOLD and histogram > buffer_up:
        return "reversal_oversold", "up"
    buffer_down = OVERBOUGHT_BUFFER * abs(cur)
    if prev > OVERBOUGHT and cur > OVERBOUGHT and histogram < -buffer_down:
        return "reversal_overbought", "down"
    return None


def evaluate_update(
    state: AlertState, update: IndicatorUpdate, cooldown_ms: int = COOLDOWN_MS
) -> tuple[AlertState, list[AlertDecision]]:
    """`evaluate` fed from an indicator update message (interval from its timeframe)."""
    return evaluate(
        state,
        macd_v=update.macd_v,
        histogram=update.histogram,
        candle_timestamp=update.timestamp,
        interval_ms=timeframe_interval_ms(update.timeframe),
        exchange_time=update.exchange_time,
        cooldown_ms=cooldown_ms,
    )


def alert_id(
    exchange_id: int, symbol: str, timeframe: str, label: str, candle_timestamp: int
) -> str:
    """Deterministic id: the first 32 hex digits (128 bits) of SHA-256 over the compact JSON
    array `[exchange_id, symbol, timeframe, label, candle_timestamp]` (UTF-8), e.g.
    `[1,"BTC-USD","5m","level_-150",1704067200000]`. JSON quoting keeps it unambiguous."""
    canonical = json.dumps(
        [exchange_id, symbol, timeframe, label, candle_timestamp],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def to_alert(
    decision: AlertDecision,
    update: IndicatorUpdate,
    *,
    context: dict[str, object] | None = None,
) -> Alert:
    """The payload for `channel:alerts:{exchange_id}`, attributed to the update's exchange."""
    return Alert(
        id=alert_id(
            update.exchange_id, update.symbol, update.timeframe, decision.label, update.timestamp
        ),
        source_exchange_id=update.exchange_id,
        source_exchange_name=update.exchange,
        symbol=update.symbol,
        timeframe=update.timeframe,
        alert_type=ALERT_TYPE,
        trigger_label=decision.label,
        trigger_value=decision.trigger_value,
        signal=update.signal,
        histogram=update.histogram,
        stage=update.stage,
        price=update.price,
        candle_timestamp=update.timestamp,
        triggered_at=decision.triggered_at,
        context=context,
    )


# Multi-timeframe context (DOMAIN.md §6, nice to have).
TIMEFRAME_WEIGHTS: Final[Mapping[str, int]] = {
    "1m": 1, "5m": 2, "15m": 3, "1h": 4, "4h": 5, "1d": 6,
}  # fmt: skip
BULLISH_STAGES: Final = frozenset({"oversold", "rebounding", "rallying"})
BEARISH_STAGES: Final = frozenset({"overbought", "retracing", "reversing"})


class TimeframeBias(msgspec.Struct, frozen=True, kw_only=True):
    bias: BiasName
    bullish_weight: int
    bearish_weight: int


def timeframe_bias(stages: Mapping[str, str]) -> TimeframeBias:
    """Weighted vote of a symbol's stages per timeframe; timeframes without a weight abstain.
    Bullish if bull > 1.5 x bear, bearish if bear > 1.5 x bull, else neutral."""
    bull = sum(TIMEFRAME_WEIGHTS.get(tf, 0) for tf, s in stages.items() if s in BULLISH_STAGES)
    bear = sum(TIMEFRAME_WEIGHTS.get(tf, 0) for tf, s in stages.items() if s in BEARISH_STAGES)
    bias: BiasName = "neutral"
    if bull > 1.5 * bear:
        bias = "bullish"
    elif bear > 1.5 * bull:
        bias = "bearish"
    return TimeframeBias(bias=bias, bullish_weight=bull, bearish_weight=bear)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AlertState)
