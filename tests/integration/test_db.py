"""livermore_common.db against a migrated Postgres: lifecycle, exchanges, symbols, accounts,
positions and alert history."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from livermore_common.db import Database, ExchangeRow, SymbolUpsert
from livermore_common.errors import UnknownExchangeError
from livermore_common.messages import Alert
from livermore_common.migrate import migrate

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    await migrate(database_url)
    async with Database(database_url) as database:
        yield database


async def test_database_is_an_async_context_manager_with_idempotent_aclose(
    database_url: str,
) -> None:
    database = Database(database_url)
    with pytest.raises(RuntimeError, match="not open"):
        _ = database.pool
    async with database as opened:
        assert opened is database
        assert await database.pool.fetchval("SELECT 1") == 1
    with pytest.raises(RuntimeError):
        _ = database.pool
    await database.aclose()  # a second close is harmless
    await database.aclose()


async def test_get_exchange_by_id_name_or_digits(db: Database) -> None:
    coinbase = await db.get_exchange(1)
    assert isinstance(coinbase, ExchangeRow)
    assert (coinbase.id, coinbase.name) == (1, "coinbase")
    assert (
        isinstance(coinbase.api_limits, dict) and coinbase.api_limits["ws_messages_per_second"] == 8
    )
    assert "5m" in coinbase.supported_timeframes
    assert coinbase.created_at.tzinfo is not None
    assert (await db.get_exchange("binance")).id == 2
    assert (await db.get_exchange("Binance_US")).id == 3
    assert (await db.get_exchange("2")).name == "binance"


@pytest.mark.parametrize("missing", ["kraken", 42, "99"])
async def test_unknown_exchange_is_a_clear_error(db: Database, missing: int | str) -> None:
    with pytest.raises(UnknownExchangeError) as info:
        await db.get_exchange(missing)
    message = str(info.value)
    assert repr(missing) in message
    assert "coinbase (1)" in message and "binance (2)" in message and "binance_us (3)" in message


async def test_list_exchanges_and_active_filter(db: Database) -> None:
    assert [e.name for e in await db.list_exchanges()] == ["coinbase", "binance", "binance_us"]
    await db.pool.execute("UPDATE exchanges SET is_active = false WHERE name = 'binance_us'")
    assert [e.id for e in await db.list_exchanges(active_only=True)] == [1, 2]
    assert len(await db.list_exchanges()) == 3


async def test_set_exchange_endpoints_points_a_row_elsewhere(db: Database) -> None:
    before = await db.get_exchange("binance")
    row = await db.set_exchange_endpoints("binance", "ws://127.0.0.1:9001", "http://127.0.0.1:9002")
    assert (row.ws_url, row.rest_url) == ("ws://127.0.0.1:9001", "http://127.0.0.1:9002")
    assert row.updated_at >= before.updated_at
    assert (await db.get_exchange(2)).ws_url == "ws://127.0.0.1:9001"
    assert (await db.get_exchange(1)).ws_url == "wss://advanced-trade-ws.coinbase.com"
    with pytest.raises(UnknownExchangeError, match="'nope'"):
        await db.set_exchange_endpoints("nope", "ws://x", "http://x")


async def test_exchange_symbols_upsert_list_and_deactivate(db: Database) -> None:
    count = await db.upsert_exchange_symbols(
        2,
        [
            SymbolUpsert(symbol="ETHUSDT", base="ETH", quote="USDT", volume_24h=5e8, volume_rank=2),
            SymbolUpsert(symbol="BTCUSDT", base="BTC", quote="USDT", volume_24h=9e8, volume_rank=1),
            SymbolUpsert(symbol="DOGEUSDT", base="DOGE", quote="USDT", tier=2),
        ],
    )
    assert count == 3
    rows = await db.list_exchange_symbols(2)
    assert [r.symbol for r in rows] == ["BTCUSDT", "ETHUSDT", "DOGEUSDT"]  # unranked last
    assert rows[0].last_volume_update is not None and rows[0].volume_24h == 9e8
    # A refresh updates in place (unique per exchange and symbol).
    await db.upsert_exchange_symbols(
        2, [SymbolUpsert(symbol="ETHUSDT", base="ETH", quote="USDT", volume_24h=1e9, volume_rank=1)]
    )
    eth = [r for r in await db.list_exchange_symbols(2) if r.symbol == "ETHUSDT"]
    assert len(eth) == 1 and (eth[0].volume_24h, eth[0].volume_rank) == (1e9, 1)
    assert [r.symbol for r in await db.list_exchange_symbols(2, tier=2)] == ["DOGEUSDT"]
    assert await db.list_exchange_symbols(1) == []
    assert await db.deactivate_exchange_symbols(2, keep=["ETHUSDT"]) == 1  # BTCUSDT, tier 1 only
    assert [r.symbol for r in await db.list_exchange_symbols(2, tier=1)] == ["ETHUSDT"]
    inactive = await db.list_exchange_symbols(2, tier=1, active_only=False)
    assert {r.symbol: r.is_active for r in inactive} == {"ETHUSDT": True, "BTCUSDT": False}


async def test_users_and_their_exchange_accounts(db: Database) -> None:
    ann = await db.create_user("ann", email="ann@example.com")
    assert (await db.get_user("ann")) == ann and (await db.get_user(ann.id)) == ann
    assert await db.get_user("nobody") is None
    first = await db.add_user_exchange(
        ann.id, "Coinbase", credentials={"env": {"api_key": "ANN_CB_KEY"}}, is_default=True
    )
    assert (first.exchange_id, first.exchange_name) == (1, "coinbase")
    assert first.credentials == {"env": {"api_key": "ANN_CB_KEY"}} and first.is_default
    second = await db.add_user_exchange(
        ann.id, 2, credentials={"encrypted": {"api_secret": "gAAAA-token"}}, is_default=True
    )
    accounts = {a.id: a for a in await db.list_user_exchanges(user_id=ann.id)}
    assert not accounts[first.id].is_default and accounts[second.id].is_default
    assert [a.id for a in await db.list_user_exchanges(exchange_id=2)] == [second.id]
    with pytest.raises(ValueError, match="never plain secrets") as info:
        await db.add_user_exchange(ann.id, 1, credentials={"api_secret": "hunter2"})
    assert "hunter2" not in str(info.value)
    with pytest.raises(UnknownExchangeError):
        await db.add_user_exchange(ann.id, "kraken", credentials={})


async def test_positions_upsert_list_and_prune(db: Database) -> None:
    user = await db.create_user("bob")
    cb = await db.add_user_exchange(user.id, "coinbase", credentials={})
    bn = await db.add_user_exchange(user.id, "binance", credentials={})
    first = await db.upsert_position(cb.id, "BTC", 0.1, 6500.25)
    assert first.quantity == Decimal("0.1") and first.value == Decimal("6500.25")
    again = await db.upsert_position(cb.id, "BTC", "0.25", None)
    assert again.id == first.id and again.quantity == Decimal("0.25") and again.value is None
    assert again.last_synced_at >= first.last_synced_at
    await db.upsert_position(cb.id, "ETH", 2)
    await db.upsert_position(bn.id, "BNB", 3)
    assert [p.symbol for p in await db.list_positions(user_exchange_id=cb.id)] == ["BTC", "ETH"]
    assert [p.symbol for p in await db.list_positions(exchange_id=2)] == ["BNB"]
    assert len(await db.list_positions()) == 3
    assert await db.remove_positions_except(cb.id, ["ETH"]) == 1
    assert [p.symbol for p in await db.list_positions(user_exchange_id=cb.id)] == ["ETH"]


def _alert(alert_id: str, exchange_id: int = 1, triggered_at: int = 1_704_067_200_000) -> Alert:
    return Alert(
        id=alert_id,
        source_exchange_id=exchange_id,
        source_exchange_name="coinbase" if exchange_id == 1 else "binance",
        symbol="BTC-USD",
        timeframe="1h",
        alert_type="macdv",
        trigger_label="level_-150",
        trigger_value=-151.5,
        signal=-140.0,
        histogram=-11.5,
        stage="oversold",
        price=42000.5,
        candle_timestamp=triggered_at - 3_600_000,
        triggered_at=triggered_at,
        context={"bias": "bearish"},
    )


async def test_alert_history_is_idempotent_by_alert_id(db: Database) -> None:
    assert await db.insert_alert(_alert("a1")) is True
    assert await db.insert_alert(_alert("a1")) is False  # a replay stores nothing
    assert await db.insert_alert(_alert("a2", exchange_id=2, triggered_at=1_704_070_800_000))
    recent = await db.recent_alerts()
    assert [a.alert_id for a in recent] == ["a2", "a1"]  # newest first
    a1 = recent[1]
    assert a1.exchange_id == 1 and a1.candle_timestamp == 1_704_063_600_000
    assert a1.triggered_at == datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    assert a1.details["stage"] == "oversold" and a1.details["context"] == {"bias": "bearish"}
    assert (a1.trigger_value, a1.price) == (-151.5, 42000.5)
    assert [a.alert_id for a in await db.recent_alerts(exchange_id=1)] == ["a1"]
    assert len(await db.recent_alerts(limit=1)) == 1
    with pytest.raises(UnknownExchangeError, match="77"):
        await db.insert_alert(_alert("a3", exchange_id=77))
