"""Candles in Redis equal the simulator's ground truth, announced exactly once, through faults."""

from __future__ import annotations

import pytest

from .conftest import (
    announced,
    assert_matches_truth,
    assert_no_duplicates,
    settings_for,
    stored,
    wait_for_closes,
)

BINANCE = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
COINBASE = ("BTC-USD", "ETH-USD", "SOL-USD")


@pytest.mark.parametrize(
    "exchange,ex_id,symbols", [("binance", 2, BINANCE), ("coinbase", 1, COINBASE)]
)
async def test_live_and_backfilled_candles_match_truth(
    sim,
    start_ingestor,
    database_url,
    redis_url,
    namespace,
    redis_client,
    keyspace,
    exchange,
    ex_id,
    symbols,
) -> None:
    settings = settings_for(
        exchange, database_url, redis_url, namespace, autostart=True, symbols=symbols
    )
    await start_ingestor(settings)
    # 20 backfilled + at least 5 live 1m candles (one sim minute per real second).
    await wait_for_closes(redis_client, keyspace, ex_id, symbols, "1m", 25)
    await wait_for_closes(redis_client, keyspace, ex_id, symbols, "5m", 21)
    for symbol in symbols:
        for tf in ("1m", "5m"):
            assert_matches_truth(
                sim, exchange, symbol, tf, await stored(redis_client, keyspace, ex_id, symbol, tf)
            )
    events = await announced(redis_client, keyspace)
    assert_no_duplicates(events)
    assert {e.exchange_id for e in events} == {ex_id}


@pytest.mark.parametrize("fault", ["drop", "stall", "malformed", "http429", "shutdown"])
async def test_binance_faults_are_repaired_without_loss_or_duplicates(
    sim,
    start_ingestor,
    database_url,
    redis_url,
    namespace,
    redis_client,
    keyspace,
    fault,
) -> None:
    settings = settings_for(
        "binance",
        database_url,
        redis_url,
        namespace,
        autostart=True,
        symbols=BINANCE[:2],
        stall_timeout_s=3.0,
    )
    running = await start_ingestor(settings)
    await wait_for_closes(redis_client, keyspace, 2, BINANCE[:2], "1m", 22)
    if fault == "drop":
        sim.faults.drop("binance")
    elif fault == "stall":
        sim.faults.stall("binance", seconds=6.0)
    elif fault == "malformed":
        for kind in ("bad_json", "wrong_types", "nan", "negative_price", "huge"):
            sim.faults.malformed("binance", kind=kind, count=1)
    elif fault == "http429":
        sim.faults.drop("binance")
        sim.faults.http_error("binance", status=429, count=2, retry_after=1)
    else:
        sim.faults.server_shutdown(after_s=0.5)
    before = len(await stored(redis_client, keyspace, 2, BINANCE[0], "1m"))
    await wait_for_closes(redis_client, keyspace, 2, BINANCE[:2], "1m", before + 12)
    for symbol in BINANCE[:2]:
        for tf in ("1m", "5m"):
            assert_matches_truth(
                sim, "binance", symbol, tf, await stored(redis_client, keyspace, 2, symbol, tf)
            )
    assert_no_duplicates(await announced(redis_client, keyspace))
    if fault == "malformed":
        assert running.ingestor.counters.dropped >= 1


async def test_coinbase_sequence_skip_is_repaired(
    sim,
    start_ingestor,
    database_url,
    redis_url,
    namespace,
    redis_client,
    keyspace,
) -> None:
    settings = settings_for(
        "coinbase", database_url, redis_url, namespace, autostart=True, symbols=COINBASE[:2]
    )
    running = await start_ingestor(settings)
    await wait_for_closes(redis_client, keyspace, 1, COINBASE[:2], "1m", 22)
    sim.faults.sequence_skip(1)
    before = len(await stored(redis_client, keyspace, 1, COINBASE[0], "1m"))
    await wait_for_closes(redis_client, keyspace, 1, COINBASE[:2], "1m", before + 8)
    assert running.ingestor.counters.gaps >= 1
    for symbol in COINBASE[:2]:
        assert_matches_truth(
            sim, "coinbase", symbol, "1m", await stored(redis_client, keyspace, 1, symbol, "1m")
        )
    assert_no_duplicates(await announced(redis_client, keyspace))
