"""The symbol manager against the simulator, Postgres and Redis: tiers, de-dup, merged lists."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from livermore_common import messages
from livermore_common.keys import KeySpace
from livermore_common.messages import SymbolEntry, SymbolList
from services.symbols.service import RefreshResult
from tests.helpers import eventually

from .conftest import World

pytestmark = pytest.mark.integration

COINBASE, BINANCE = 1, 2
# What the simulator's demo accounts hold (services/sim/*_info.py HOLDINGS plus one thin asset).
COINBASE_HELD = {"BTC", "ETH", "ALGO"}
BINANCE_HELD = {"BTC", "ETH", "SOL", "ALGO"}


async def merged(world: World, exchange_id: int) -> SymbolList:
    raw = await world.redis.get(world.keys.symbol_list_key(exchange_id))
    assert raw, "no merged list written"
    return messages.decode(raw, SymbolList)


async def symbol_rows(world: World, exchange_id: int) -> dict[str, tuple[int, bool, int | None]]:
    rows = await world.db.list_exchange_symbols(exchange_id, active_only=False)
    return {r.symbol: (r.tier, r.is_active, r.volume_rank) for r in rows}


async def refresh_all(world: World, **overrides: Any) -> dict[str, RefreshResult]:
    manager = world.manager(**overrides)
    return {r.exchange: r for r in await manager.refresh_all()}


async def redis_dump(redis: aioredis.Redis, keys: KeySpace) -> str:
    """Every value under this test's namespace, as one text to search."""
    parts = []
    async for key in redis.scan_iter(match=f"{keys.namespace}*"):
        kind = (await redis.type(key)).decode()
        if kind == "string":
            parts.append(repr(await redis.get(key)))
        elif kind == "hash":
            parts.append(repr(await redis.hgetall(key)))
        elif kind == "zset":
            parts.append(repr(await redis.zrange(key, 0, -1)))
        parts.append(key.decode())
    return "\n".join(parts)


async def test_tier1_from_volumes_tier2_from_accounts_and_dedup(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    with capture_logs() as logs:
        results = await refresh_all(world)
    ids = world.user_ids

    # Tier 1: the venue's top N by 24h quote volume, ranked, in exchange_symbols and the list.
    cb_top, bn_top = await world.venue_top("coinbase", 3), await world.venue_top("binance", 2)
    rows = await symbol_rows(world, COINBASE)
    assert [s for s, (tier, active, _) in rows.items() if tier == 1 and active] == cb_top
    assert [rows[s][2] for s in cb_top] == [1, 2, 3]

    # Tier 2: held, valued above the threshold, not stablecoin or fiat, not already Tier 1.
    cb_list, bn_list = await merged(world, COINBASE), await merged(world, BINANCE)
    cb_tier2 = sorted({f"{a}-USD" for a in COINBASE_HELD} - set(cb_top))
    assert cb_list.symbols[:3] == tuple(
        SymbolEntry(symbol=s, tier=1, volume_rank=i + 1) for i, s in enumerate(cb_top)
    )
    assert sorted(e.symbol for e in cb_list.symbols[3:]) == cb_tier2
    assert all(e.tier == 2 and e.user_ids == (ids["ann"],) for e in cb_list.symbols[3:])

    bn_tier2 = sorted({f"{a}USDT" for a in BINANCE_HELD} - set(bn_top))
    assert [e.symbol for e in bn_list.symbols[:2]] == bn_top
    assert sorted(e.symbol for e in bn_list.symbols[2:]) == bn_tier2 and bn_tier2
    both = tuple(sorted((ids["ann"], ids["bob"])))
    assert all(e.tier == 2 and e.user_ids == both for e in bn_list.symbols[2:])

    # De-dup (SYM-04): BTC is held by ann on both venues, yet listed once, tier 1, no user ids.
    for listing, btc in ((cb_list, "BTC-USD"), (bn_list, "BTCUSDT")):
        (entry,) = [e for e in listing.symbols if e.symbol == btc]
        assert entry.tier == 1 and entry.user_ids == ()
        assert len({e.symbol for e in listing.symbols}) == len(listing.symbols)
    # Stablecoins and fiat held (USD, USDT) are nowhere.
    assert not [e for e in cb_list.symbols + bn_list.symbols if e.symbol.startswith("USD")]
    # exchange_symbols mirrors the tiers.
    bn_rows = await symbol_rows(world, BINANCE)
    assert {s for s, (tier, active, _) in bn_rows.items() if tier == 2 and active} == set(bn_tier2)

    # positions: what each account holds, valued in USD; the failing account has none.
    accounts = {a.user_id: a for a in await world.db.list_user_exchanges(exchange_id=COINBASE)}
    held = {p.symbol: p for p in await world.db.list_positions(exchange_id=COINBASE)}
    assert set(held) == COINBASE_HELD | {"USD"}
    assert {p.user_exchange_id for p in held.values()} == {accounts[ids["ann"]].id}
    assert float(held["USD"].value or 0) == pytest.approx(10000.5)
    assert float(held["BTC"].value or 0) > 1000 and float(held["BTC"].quantity) == 0.5
    synced = {a.user_id: a for a in results["binance"].accounts}
    assert synced[ids["ann"]].ok and synced[ids["bob"]].ok and not synced[ids["mallory"]].ok
    (mallory,) = await world.db.list_user_exchanges(user_id=ids["mallory"])
    assert await world.db.list_positions(user_exchange_id=mallory.id) == []

    # Secrets: never in logs, printed output, Redis, or results.
    text = "\n".join(
        [repr(logs), *capsys.readouterr(), await redis_dump(world.redis, world.keys),
         repr(results)]
    )  # fmt: skip
    assert synced[ids["mallory"]].error and "Signature" in synced[ids["mallory"]].error
    for secret in world.secret_values:
        assert secret not in text


async def test_dropouts_deactivate_tiers_move_and_shared_data_stays(world: World) -> None:
    await refresh_all(world, top_overrides={"coinbase": 3, "binance": 3})
    cb_top = await world.venue_top("coinbase", 3)
    bn_top = await world.venue_top("binance", 3)
    assert "SOLUSDT" in bn_top  # held and Tier 1: shared only
    assert [e.symbol for e in (await merged(world, BINANCE)).symbols if e.tier == 1] == bn_top

    dropped = cb_top[2]
    candle_key = world.keys.candle_key(COINBASE, dropped, "1m")
    await world.redis.zadd(candle_key, {b'{"timestamp":0}': 0})
    pubsub = world.redis.pubsub()
    await pubsub.subscribe(world.keys.symbols_changed_channel(COINBASE))
    try:
        # Smaller Tier 1 and a threshold no holding reaches: rank 3 and Tier 2 drop out.
        results = await refresh_all(
            world, top_overrides={"coinbase": 2, "binance": 2}, min_value_usd=1e12
        )
        assert results["coinbase"].changed and results["coinbase"].deactivated >= 2
        announced = await eventually(lambda: _next_message(pubsub), timeout=5)
    finally:
        await pubsub.aclose()

    listing = await merged(world, COINBASE)
    assert messages.decode(announced, SymbolList) == listing
    assert [e.symbol for e in listing.symbols] == cb_top[:2]
    rows = await symbol_rows(world, COINBASE)
    assert rows[dropped][:2] == (1, False)  # deactivated, not deleted
    assert rows["ALGO-USD"][:2] == (2, False)
    assert await world.redis.exists(candle_key) == 1  # shared data is never deleted

    # SOL left Tier 1 but the threshold now hides every holding: inactive, not deleted.
    assert (await symbol_rows(world, BINANCE))["SOLUSDT"][1] is False

    # The same inputs again: nothing rewritten, nothing announced.
    before = await world.redis.get(world.keys.symbol_list_key(COINBASE))
    again = await refresh_all(
        world, top_overrides={"coinbase": 2, "binance": 2}, min_value_usd=1e12
    )
    assert not again["coinbase"].changed and again["coinbase"].deactivated == 0
    assert await world.redis.get(world.keys.symbol_list_key(COINBASE)) == before


async def test_a_symbol_moves_from_tier1_to_tier2_for_its_holders(world: World) -> None:
    await refresh_all(world, top_overrides={"coinbase": 3, "binance": 3})
    assert (await symbol_rows(world, BINANCE))["SOLUSDT"][:2] == (1, True)
    await refresh_all(world, top_overrides={"coinbase": 3, "binance": 2})
    rows = await symbol_rows(world, BINANCE)
    assert rows["SOLUSDT"][:2] == (2, True)
    (sol,) = [e for e in (await merged(world, BINANCE)).symbols if e.symbol == "SOLUSDT"]
    assert sol.tier == 2 and set(sol.user_ids) == {world.user_ids["ann"], world.user_ids["bob"]}


async def test_threshold_decides_tier2(world: World) -> None:
    await refresh_all(world)
    (algo,) = [p for p in await world.db.list_positions(exchange_id=COINBASE) if p.symbol == "ALGO"]
    value = float(algo.value or 0)
    assert value > 0
    await refresh_all(world, min_value_usd=value * 1.01)
    assert "ALGO-USD" not in {e.symbol for e in (await merged(world, COINBASE)).symbols}
    await refresh_all(world, min_value_usd=value * 0.99)
    assert "ALGO-USD" in {e.symbol for e in (await merged(world, COINBASE)).symbols}


async def _next_message(pubsub: Any) -> bytes | None:
    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
    return None if message is None else message["data"]


async def test_schedule_refreshes_periodically_and_a_failing_venue_does_not_block(
    world: World,
) -> None:
    # binance_us points at a port nobody listens on: it fails and is retried; the others go on.
    await world.db.set_exchange_endpoints("binance_us", "ws://127.0.0.1:9", "http://127.0.0.1:9")
    manager = world.manager(
        exchanges=("binance_us", "coinbase", "binance"), interval_s=0.3, retry_s=0.2
    )
    stop = asyncio.Event()
    task = asyncio.create_task(manager.run_schedule(stop))
    try:
        await eventually(lambda: world.redis.get(world.keys.symbol_list_key(BINANCE)), 20)
        key = world.keys.symbol_list_key(COINBASE)
        await world.redis.delete(key)
        # Deleted behind the manager's back: the next scheduled round writes it again.
        await eventually(lambda: world.redis.get(key), 20)
        await eventually(lambda: manager.failures.get("binance_us", 0) >= 2, 20)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    assert "coinbase" not in manager.failures and "binance" not in manager.failures
    assert not await world.redis.exists(world.keys.symbol_list_key(3))
