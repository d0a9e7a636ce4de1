"""The worker sends a batch's commits in parts while it computes the rest. A batch that fails
after some parts went out (here: a history read failing for a series in a later part) leaves
those parts committed; the redelivered batch must then publish every remaining update once and
nothing twice, with values equal to the from-scratch computation."""

from __future__ import annotations

from collections import Counter

from livermore_common import messages
from livermore_common.cache import CandleCache
from livermore_common.messages import IndicatorUpdate
from livermore_common.streams import StreamEntry
from services.indicators.store import SeriesCommit, StateStore
from services.indicators.worker import IndicatorWorker

from .conftest import closed, wave_candles
from .test_pipeline import expected_updates, stream_values

SERIES = 120  # several commit parts (32, 64, ...)
BROKEN = "S0100"  # a series in a later part, rebuilt from history in the failing batch


async def test_a_batch_failing_after_some_parts_were_committed_is_redone_exactly(
    redis_client, keyspace
) -> None:
    cache = CandleCache(redis_client, keyspace)
    fail = {"armed": False}

    async def read(event, newest, oldest):  # type: ignore[no-untyped-def]
        if fail["armed"] and event.symbol == BROKEN:
            fail["armed"] = False
            raise ConnectionError("history read failed")
        return await cache.read_candles(
            event.exchange_id, event.symbol, event.timeframe, start_ms=oldest, end_ms=newest
        )

    worker = IndicatorWorker(
        store=StateStore(redis_client, stream=keyspace.indicator_stream),
        keys=keyspace,
        read_candles=read,
    )
    symbols = [f"S{n:04d}" for n in range(SERIES)]
    series = {
        s: [closed(c, symbol=s) for c in wave_candles(50, phase=n * 0.3)]
        for n, s in enumerate(symbols)
    }
    for s in symbols:
        await cache.announce_closed_many(series[s])
    # Every series but BROKEN has seen its first 45 candles; BROKEN has no state at all, so
    # the next batch rebuilds it from history (the read that fails once).
    n = 0
    for s in symbols:
        if s != BROKEN:
            await worker.handle(
                [
                    StreamEntry(f"{n + i}-0", messages.encode(e), 1)
                    for i, e in enumerate(series[s][:45])
                ]
            )
            n += 45
    batch = [
        StreamEntry(f"{n + i}-0", messages.encode(series[s][45]), 1) for i, s in enumerate(symbols)
    ]
    fail["armed"] = True
    try:
        await worker.handle(batch)
    except ConnectionError:
        pass
    else:
        raise AssertionError("the batch was meant to fail")
    # Parts before BROKEN's went out and were committed.
    got = await stream_values(redis_client, keyspace.indicator_stream, IndicatorUpdate)
    assert any(
        u.symbol == symbols[0] and u.timestamp == series[symbols[0]][45].timestamp for u in got
    )
    await worker.handle(batch)  # the redelivery
    await worker.handle(
        [
            StreamEntry(f"{n + SERIES + i}-0", messages.encode(series[s][j]), 1)
            for i, (s, j) in enumerate((s, j) for s in symbols for j in (46, 47))
        ]
    )

    got = await stream_values(redis_client, keyspace.indicator_stream, IndicatorUpdate)
    assert not [k for k, c in Counter((u.symbol, u.timestamp) for u in got).items() if c > 1]
    for s in symbols:
        want = expected_updates(series[s][:48])
        mine = [u for u in got if u.symbol == s]
        assert [(u.timestamp, u.macd_v, u.signal) for u in mine] == [
            (u.timestamp, u.macd_v, u.signal) for u in want
        ], s


async def test_the_indicator_stream_is_trimmed_to_about_its_maxlen(redis_client, keyspace) -> None:
    """XADD carries no MAXLEN in the commit script; one XTRIM per call keeps the bound."""
    store = StateStore(redis_client, stream=keyspace.indicator_stream, maxlen=50)
    stream_len = 0
    for n in range(20):
        items = [
            (
                keyspace.indicator_state_key(1, f"S{s}", "1m", "macd-v"),
                keyspace.indicator_channel(1, f"S{s}", "1m", "macd-v"),
                SeriesCommit(
                    expected_ts="" if n == 0 else str(n - 1),
                    expected_state=b"" if n == 0 else b"state %d" % (n - 1),
                    new_ts=n,
                    state=b"state %d" % n,
                    indicator_json=b'{"n":%d}' % n,
                    indicator_keys=[keyspace.indicator_key(1, f"S{s}", "1m", "macd-v")],
                    ttl=0,
                    updates=[b'{"n":%d}' % n],
                ),
            )
            for s in range(50)
        ]
        assert all(await store.commit(items))
        stream_len = max(stream_len, await redis_client.xlen(keyspace.indicator_stream))
    # 1,000 entries added; '~' trims whole nodes (100 entries each by default).
    assert 50 <= stream_len <= 50 + 100 + 50
