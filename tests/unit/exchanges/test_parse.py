"""Pure parsing helpers: venue times, symbol ranking, balances, Retry-After, candle checks."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from livermore_common.exchanges.binance import parse as bparse
from livermore_common.exchanges.binance import schemas as b
from livermore_common.exchanges.coinbase import parse as cparse
from livermore_common.exchanges.coinbase import schemas as c
from livermore_common.exchanges.http import parse_retry_after
from livermore_common.exchanges.validation import InvalidFrame, checked_candle, volume_units


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2023-06-09T20:19:35.39625135Z", 1686341975396),
        ("2019-08-14T20:42:27.265Z", 1565815347265),
        ("2024-01-01T00:00:00Z", 1704067200000),
        ("2024-01-01T01:00:00+01:00", 1704067200000),
        ("2023-06-23 20:31:56.121961769 +0000 UTC m=+91717.525857105", 1687552316121),
        ("2024-01-01 00:00:00.5 +0000 UTC", 1704067200500),
    ],
)
def test_coinbase_times(text: str, ms: int) -> None:
    assert cparse.parse_time_ms(text) == ms


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2024-13-01T00:00:00Z",
        "2024-12-45T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "1704067200",
    ],
)
def test_unreadable_times_are_invalid_frames(text: str) -> None:
    with pytest.raises(InvalidFrame):
        cparse.parse_time_ms(text)


def test_coinbase_products_rank_online_spot_non_alias(fixtures_dir: Path) -> None:
    products = msgspec.json.decode(
        (fixtures_dir / "coinbase/products.json").read_bytes(), type=c.ProductsResponse
    ).products
    ranked = [v for v in map(cparse.symbol_volume, products) if v is not None]
    # BTC-USDC is an alias of BTC-USD (same book): counted once.
    assert [(v.symbol, v.base, v.quote, v.volume_24h) for v in ranked] == [
        ("BTC-USD", "BTC", "USD", 758532193.02)
    ]
    disabled = msgspec.structs.replace(products[0], trading_disabled=True)
    offline = msgspec.structs.replace(products[0], status="offline")
    assert cparse.symbol_volume(disabled) is None and cparse.symbol_volume(offline) is None


def test_coinbase_balances_add_holds(fixtures_dir: Path) -> None:
    accounts = msgspec.json.decode(
        (fixtures_dir / "coinbase/accounts.json").read_bytes(), type=c.AccountsResponse
    ).accounts
    balances = [x for x in map(cparse.balance, accounts) if x is not None]
    assert [(x.asset, x.quantity) for x in balances] == [
        ("BTC", pytest.approx(1.23956789)),
        ("USD", pytest.approx(10450.50)),
    ]


def test_coinbase_server_time_fields() -> None:
    assert cparse.server_time_ms(c.ServerTimeResponse(epochMillis="1704067200123")) == 1704067200123
    assert cparse.server_time_ms(c.ServerTimeResponse(epochSeconds=1704067200)) == 1704067200000
    assert cparse.server_time_ms(c.ServerTimeResponse(iso="2024-01-01T00:00:00Z")) == 1704067200000
    with pytest.raises(InvalidFrame):
        cparse.server_time_ms(c.ServerTimeResponse())


def test_binance_top_symbols_trading_only_by_quote_volume(fixtures_dir: Path) -> None:
    info = msgspec.json.decode(
        (fixtures_dir / "binance/exchange_info_excerpt_2021_real.json").read_bytes(),
        type=b.ExchangeInfoResponse,
    )
    tickers = [
        b.Ticker24h(symbol="ETHBTC", quoteVolume="100"),
        b.Ticker24h(symbol="LTCBTC", quoteVolume="300"),
        b.Ticker24h(symbol="BCCBTC", quoteVolume="9999"),  # status BREAK: not tradable
        b.Ticker24h(symbol="BNBBTC", quoteVolume="NaN"),  # unreadable volume: left out
        b.Ticker24h(symbol="NOPE", quoteVolume="1"),
    ]
    ranked = bparse.symbol_volumes(info, tickers)
    assert [(v.symbol, v.base, v.quote, v.volume_24h) for v in ranked] == [
        ("LTCBTC", "LTC", "BTC", 300.0),
        ("ETHBTC", "ETH", "BTC", 100.0),
    ]
    assert bparse.symbol_volumes(info, tickers, quotes=["USDT"]) == []


def test_binance_balances(fixtures_dir: Path) -> None:
    account = msgspec.json.decode(
        (fixtures_dir / "binance/account.json").read_bytes(), type=b.AccountResponse
    )
    extra = b.AssetBalance(asset="ZERO", free="0", locked="0.00000000")
    bad = b.AssetBalance(asset="BAD", free="-1")
    account = msgspec.structs.replace(account, balances=[*account.balances, extra, bad])
    assert [(x.asset, x.quantity) for x in bparse.balances(account)] == [
        ("BTC", 4723846.89208129),
        ("LTC", 4763368.68006011),
    ]


def test_stream_names_are_lower_case() -> None:
    assert bparse.stream_name("BTCUSDT", "1h") == "btcusdt@kline_1h"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7", 7.0), ("0", 0.0), (None, 60.0), ("soon", 60.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_retry_after(value: str | None, seconds: float) -> None:
    assert parse_retry_after(value) == seconds


def test_checked_candle_rules() -> None:
    assert checked_candle(0, "1", "2", "0.5", "1.5", "0").volume == 0.0
    for bad in [("1", "2", "3", "1", "1"), ("1", "inf", "0", "1", "1"), ("1", "2", "0", "1", "-1")]:
        with pytest.raises(InvalidFrame):
            checked_candle(0, *bad)
    with pytest.raises(InvalidFrame):
        checked_candle(-1, "1", "1", "1", "1", "1")


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("1", 10**12),
        ("0.00150000", 1_500_000_000),
        ("12.", 12 * 10**12),
        ("1e-3", 10**9),
        ("0.1234567890129", 123456789012),
    ],
)
def test_volume_units(text: str, units: int) -> None:
    assert volume_units(text) == units


@pytest.mark.parametrize("text", ["-1", "abc", "NaN", ""])
def test_bad_volume_units(text: str) -> None:
    with pytest.raises(InvalidFrame):
        volume_units(text)
