"""The ingestor follows the merged symbol list live; each tier goes to its own keys (SYM-04)."""

from __future__ import annotations

import time

from livermore_common import messages
from livermore_common.messages import SymbolEntry, SymbolList
from tests.helpers import eventually

from .conftest import settings_for


async def _publish_list(redis_client, keyspace, entries) -> None:  # type: ignore[no-untyped-def]
    merged = SymbolList(exchange_id=2, updated_at=int(time.time() * 1000), symbols=tuple(entries))
    await redis_client.set(keyspace.symbol_list_key(2), messages.encode(merged))


async def test_tier1_uses_shared_keys_and_tier2_user_overflow_with_ttl(
    sim,
    start_ingestor,
    database_url,
    redis_url,
    namespace,
    redis_client,
    keyspace,
) -> None:
    await _publish_list(redis_client, keyspace, [SymbolEntry(symbol="BTCUSDT", tier=1)])
    settings = settings_for(
        "binance", database_url, redis_url, namespace, autostart=True, timeframes=("1m",)
    )
    await start_ingestor(settings)
    shared_btc = keyspace.candle_key(2, "BTCUSDT", "1m")
    await eventually(lambda: redis_client.zcard(shared_btc), timeout=20)

    # A user starts holding ETH (tier 2 only) and also holds BTC (tier 1: shared keys only).
    await _publish_list(
        redis_client,
        keyspace,
        [
            SymbolEntry(symbol="BTCUSDT", tier=1),
            SymbolEntry(symbol="ETHUSDT", tier=2, user_ids=(7,)),
        ],
    )
    user_eth = keyspace.user_candle_key(7, 2, "ETHUSDT", "1m")
    await eventually(lambda: redis_client.zcard(user_eth), timeout=30)
    ttl = await redis_client.ttl(user_eth)
    assert 0 < ttl <= settings.user_ttl_seconds
    assert await redis_client.ttl(shared_btc) == -1  # shared data has no TTL
    assert await redis_client.exists(keyspace.candle_key(2, "ETHUSDT", "1m")) == 0
    assert await redis_client.exists(keyspace.user_candle_key(7, 2, "BTCUSDT", "1m")) == 0

    # The user sells ETH: the ingestor stops following it; nothing shared is deleted.
    await _publish_list(redis_client, keyspace, [SymbolEntry(symbol="BTCUSDT", tier=1)])
    before = await redis_client.zcard(shared_btc)
    await eventually(lambda: _grew(redis_client, shared_btc, before + 3), timeout=30)
    eth_count = await redis_client.zcard(user_eth)
    await eventually(lambda: _grew(redis_client, shared_btc, before + 6), timeout=30)
    assert await redis_client.zcard(user_eth) <= eth_count + 1  # at most one in flight
    assert await redis_client.zcard(shared_btc) >= before + 6


async def _grew(redis_client, key, n):  # type: ignore[no-untyped-def]
    return await redis_client.zcard(key) >= n
