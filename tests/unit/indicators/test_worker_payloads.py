"""The indicator worker's fast encodings equal the plain ones: update JSON built positionally (and
its prev_timestamp spliced in) == `messages.encode(to_update(...))`; the commit script call packed
by hand == the same arguments packed generically."""

from __future__ import annotations

import pytest

from livermore_common import messages
from livermore_common.indicators import MacdVState
from livermore_common.messages import Candle, CandleClosed
from livermore_common.redisbus import pack_command
from services.indicators.store import SeriesCommit, StateStore
from services.indicators.worker import _update_json, _with_prev, to_update

MIN = 60_000


def _candles(n: int) -> list[Candle]:
    out = []
    for i in range(n):
        if i % 7 == 3:
            continue  # gaps: synthetic bars, liquidity and reason vary
        p = 100.0 + (i % 5) * 1.37 - (i % 3) * 0.91 + i * 0.01
        out.append(
            Candle(timestamp=i * MIN, open=p, high=p + 1.5, low=p - 1.25, close=p + 0.3, volume=i)
        )
    return out


def _event(candle: Candle, **extra: object) -> CandleClosed:
    return CandleClosed(
        exchange_id=3,
        exchange="binance",
        symbol="ÉTH-USD",
        timeframe="1m",
        timestamp=candle.timestamp,
        open=candle.open,
        high=candle.high,
        low=candle.low,
        close=candle.close,
        volume=candle.volume,
        exchange_time=candle.timestamp + 61_000,
        received_at=candle.timestamp + 61_002,
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("extra", [{}, {"tier": 2, "user_ids": (7, 11)}])
def test_update_json_equals_the_plain_encoding(extra: dict[str, object]) -> None:
    state = MacdVState(interval_ms=MIN)
    seen = set()
    for candle in _candles(120):
        point = state.update(candle)
        event = _event(candle, **extra)
        for prev in (None, candle.timestamp - MIN, 0):
            want = messages.encode(to_update(event, point, prev))
            assert _update_json(event, point, prev) == want
            assert _with_prev(_update_json(event, point), prev) == want
        seen.add((point.macd_v is None, point.reason, point.liquidity))
    assert len(seen) >= 3  # warming up, low activity and valued points were all covered


def test_commit_call_packed_by_hand_equals_generic_packing() -> None:
    store = StateStore(None, stream="ns:stream:indicators", maxlen=12345)  # type: ignore[arg-type]
    commits = [
        (
            "ns:state:a",
            "ns:chan:a",
            SeriesCommit(
                expected_ts="",
                new_ts=1_000,
                state=b"\x8a\x00state",
                indicator_json=b'{"v":1}',
                indicator_keys=["ns:indicator:a"],
                ttl=0,
                updates=[],
            ),
        ),
        (
            "ns:state:b",
            "ns:chan:b",
            SeriesCommit(
                expected_ts="999",
                new_ts=2_000,
                state=b"s" * 300,
                indicator_json=b'{"v":2}',
                indicator_keys=["ns:u:1:indicator:b", "ns:u:2:indicator:b"],
                ttl=86_400,
                updates=[b'{"u":1}', b'{"u":2}' * 50],
                expected_state=b"old\r\nbytes",
            ),
        ),
    ]
    keys: list[str] = ["ns:stream:indicators"]
    args: list[bytes | str | int] = [12345]
    for state_key, channel, c in commits:
        keys += [state_key, *c.indicator_keys]
        args += [c.expected_ts, c.expected_state, c.new_ts, c.state, c.indicator_json, c.ttl]
        args += [len(c.indicator_keys), channel, len(c.updates), *c.updates]
    sha = b"f" * 40
    assert store._pack(sha, commits) == pack_command("EVALSHA", sha, len(keys), *keys, *args)
