"""A repair the venue refuses is retried until it succeeds, and fills the hole even though later
candles were stored in the meantime (before, it was logged once and the hole stayed)."""

from __future__ import annotations

from tests.helpers import eventually

from .conftest import (
    announced,
    assert_matches_truth,
    assert_no_duplicates,
    settings_for,
    stored,
    wait_for_closes,
)

COINBASE = ("BTC-USD", "ETH-USD", "SOL-USD")


async def test_a_failed_repair_is_retried_and_fills_the_hole(
    sim,
    start_ingestor,
    database_url,
    redis_url,
    namespace,
    redis_client,
    keyspace,
) -> None:
    settings = settings_for(
        "coinbase",
        database_url,
        redis_url,
        namespace,
        autostart=True,
        symbols=COINBASE,
        timeframes=("1m",),
    )
    running = await start_ingestor(settings)
    await wait_for_closes(redis_client, keyspace, 1, COINBASE, "1m", 22)
    # The next REST calls fail (the venue is briefly unavailable), then a gap is reported: the
    # repair's first attempts fail while live minutes keep being stored after the hole.
    sim.faults.http_error("coinbase", status=503, count=4)
    sim.faults.sequence_skip(1)
    before = len(await stored(redis_client, keyspace, 1, COINBASE[0], "1m"))
    await wait_for_closes(redis_client, keyspace, 1, COINBASE, "1m", before + 12, timeout=60)
    counters = running.ingestor.counters
    assert counters.gaps >= 1
    assert counters.repair_retries >= 1

    async def repaired() -> bool:
        for symbol in COINBASE:
            try:
                assert_matches_truth(
                    sim,
                    "coinbase",
                    symbol,
                    "1m",
                    await stored(redis_client, keyspace, 1, symbol, "1m"),
                )
            except AssertionError:
                return False
        return True

    await eventually(repaired, timeout=30, interval=0.5)
    assert_no_duplicates(await announced(redis_client, keyspace))
