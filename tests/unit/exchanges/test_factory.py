"""The adapter factory: registration is data, rows pick the adapter, unknown names are clear."""

from __future__ import annotations

import pytest

from livermore_common.errors import UnknownExchangeError
from livermore_common.exchanges import ExchangeAdapterFactory, ExchangeInfo
from livermore_common.exchanges.binance.adapter import BinanceAdapter
from livermore_common.exchanges.coinbase.adapter import CoinbaseAdapter

ROWS = {
    1: ExchangeInfo(
        id=1,
        name="coinbase",
        display_name="Coinbase Advanced Trade",
        ws_url="ws://127.0.0.1:1/ws",
        rest_url="http://127.0.0.1:1",
    ),
    2: ExchangeInfo(
        id=2,
        name="binance",
        display_name="Binance",
        ws_url="ws://127.0.0.1:2",
        rest_url="http://127.0.0.1:2",
        api_limits={"streams_per_connection": 200},
    ),
    3: ExchangeInfo(
        id=3,
        name="binance_us",
        display_name="Binance US",
        ws_url="wss://stream.binance.us:9443",
        rest_url="https://api.binance.us",
    ),
    9: ExchangeInfo(
        id=9,
        name="kraken",
        display_name="Kraken",
        ws_url="wss://ws.kraken.com",
        rest_url="https://api.kraken.com",
    ),
}


async def load_row(exchange_id: int) -> ExchangeInfo:
    return ROWS[exchange_id]


@pytest.mark.parametrize(
    ("exchange_id", "cls"), [(1, CoinbaseAdapter), (2, BinanceAdapter), (3, BinanceAdapter)]
)
async def test_create_builds_the_adapter_registered_for_the_row_name(exchange_id, cls) -> None:
    adapter = await ExchangeAdapterFactory(load_row).create(exchange_id)
    try:
        assert type(adapter) is cls
        assert adapter.info == ROWS[exchange_id]  # endpoints come from the row as given
    finally:
        await adapter.aclose()


async def test_row_limits_reach_the_adapter() -> None:
    adapter = await ExchangeAdapterFactory(load_row).create(2)
    try:
        assert adapter.capabilities.max_streams_per_connection == 200
    finally:
        await adapter.aclose()


async def test_unknown_name_lists_the_registered_ones() -> None:
    with pytest.raises(UnknownExchangeError) as info:
        await ExchangeAdapterFactory(load_row).create(9)
    message = str(info.value)
    assert "'kraken'" in message
    assert "binance, binance_us, coinbase" in message


async def test_register_adds_an_adapter_without_touching_the_others() -> None:
    factory = ExchangeAdapterFactory(load_row)
    factory.register("kraken", CoinbaseAdapter)  # any class with the adapter constructor
    adapter = factory.create_from_info(ROWS[9])
    await adapter.aclose()
    assert type(adapter) is CoinbaseAdapter
    assert factory.registered == ("binance", "binance_us", "coinbase", "kraken")
    assert ExchangeAdapterFactory().registered == ("binance", "binance_us", "coinbase")


async def test_empty_registry_and_missing_loader_are_clear_errors() -> None:
    with pytest.raises(UnknownExchangeError, match="registered: none"):
        ExchangeAdapterFactory(adapters={}).create_from_info(ROWS[1])
    with pytest.raises(UnknownExchangeError, match="no row loader"):
        await ExchangeAdapterFactory().create(1)
