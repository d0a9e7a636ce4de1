import pytest

from livermore_common import keys
from livermore_common.keys import KeySpace


def test_public_contract_names() -> None:
    assert keys.candle_key(1, "BTC-USD", "5m") == "candles:1:BTC-USD:5m"
    assert keys.indicator_key(2, "BTCUSDT", "1h", "macd-v") == "indicator:2:BTCUSDT:1h:macd-v"
    assert keys.user_candle_key(7, 1, "ETH-USD", "1m") == "usercandles:7:1:ETH-USD:1m"
    assert keys.user_indicator_key(7, 1, "ETH-USD", "1m", "macd-v") == (
        "userindicator:7:1:ETH-USD:1m:macd-v"
    )
    assert (
        keys.candle_close_channel(1, "BTC-USD", "5m")
        == "channel:exchange:1:candle:close:BTC-USD:5m"
    )
    assert keys.indicator_channel(2, "BTCUSDT", "4h", "macd-v") == (
        "channel:exchange:2:indicator:BTCUSDT:4h:macd-v"
    )
    assert keys.alerts_channel(1) == "channel:alerts:1"
    assert keys.exchange_status_key(2) == "exchange:status:2"
    assert keys.CONTROL_CHANNEL == "channel:control"
    assert keys.CONTROL_RESPONSES_CHANNEL == "channel:control:responses"


def test_legacy_functions_warn_and_keep_the_old_shape() -> None:
    with pytest.warns(DeprecationWarning):
        assert keys.legacy_candle_key(5, 1, "BTC-USD", "1m") == "candles:5:1:BTC-USD:1m"
    with pytest.warns(DeprecationWarning):
        assert keys.legacy_indicator_key(5, 1, "BTC-USD", "1m", "macd-v") == (
            "indicator:5:1:BTC-USD:1m:macd-v"
        )
    with pytest.warns(DeprecationWarning):
        assert "5" in keys.legacy_candle_close_channel(5, 1, "BTC-USD", "1m")


@pytest.mark.parametrize("symbol", ["BTC:USD", "", "BTC USD"])
def test_symbols_with_separators_are_refused(symbol: str) -> None:
    with pytest.raises(ValueError, match="symbol"):
        keys.candle_key(1, symbol, "1m")


def test_namespace_prefixes_every_name() -> None:
    ks = KeySpace("t:")
    assert ks.candle_key(1, "A", "1m") == "t:candles:1:A:1m"
    assert ks.alerts_channel(3) == "t:channel:alerts:3"
    assert ks.control_channel == "t:channel:control"
    assert ks.dead_letter_stream(ks.candle_closed_stream) == "t:stream:candles:closed:dead"
