"""A Coinbase connection that goes silent is detected, replaced, and what it missed is repaired.

The stall outlasts the detection (3 s: three missed one-second heartbeats), so the replacement
connection is opened, acknowledged and given its trade snapshot while the venue is still silent;
the minutes in progress then must not be closed from the trades seen before the silence.
"""

from __future__ import annotations

import pytest

from livermore_common import messages
from livermore_common.messages import LifecycleEvent

from .conftest import (
    announced,
    assert_matches_truth,
    assert_no_duplicates,
    settings_for,
    stored,
    wait_for_closes,
)

COINBASE = ("BTC-USD", "ETH-USD", "SOL-USD", "DOGE-USD", "ADA-USD")


@pytest.mark.parametrize("round_", range(2))
async def test_coinbase_stall_is_detected_and_repaired(
    sim,
    start_ingestor,
    database_url,
    redis_url,
    namespace,
    redis_client,
    keyspace,
    round_,
) -> None:
    symbols = [s for s in COINBASE if s in sim.markets["coinbase"].by_name]
    settings = settings_for(
        "coinbase",
        database_url,
        redis_url,
        namespace,
        autostart=True,
        symbols=tuple(symbols),
        timeframes=("1m",),
    )
    await start_ingestor(settings)
    await wait_for_closes(redis_client, keyspace, 1, symbols, "1m", 22)
    sim.faults.stall("coinbase", seconds=4.0 + round_ * 0.5)
    before = len(await stored(redis_client, keyspace, 1, symbols[0], "1m"))
    # At one sim minute per real second the silence spans several minutes; wait until well after.
    await wait_for_closes(redis_client, keyspace, 1, symbols, "1m", before + 10)
    events = [
        messages.decode(f[b"data"], LifecycleEvent)
        for _, f in await redis_client.xrange(keyspace.lifecycle_stream)
    ]
    stalls = [e for e in events if e.event == "exchange:disconnected" and "stall" in str(e.error)]
    assert stalls, [(e.event, e.error) for e in events]
    for symbol in symbols:
        assert_matches_truth(
            sim, "coinbase", symbol, "1m", await stored(redis_client, keyspace, 1, symbol, "1m")
        )
    assert_no_duplicates(await announced(redis_client, keyspace))
