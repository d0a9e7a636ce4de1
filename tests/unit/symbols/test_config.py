"""Symbol manager settings: environment defaults, per-exchange Tier 1 sizes, flag precedence."""

from __future__ import annotations

import pytest

from livermore_common.config import ConfigError
from services.symbols.config import parse, parse_top


def test_defaults() -> None:
    settings, check = parse([], {})
    assert not check
    assert settings.top_n == 20 and settings.top_overrides == {}
    assert settings.interval_s == 3600 and settings.min_value_usd == 10
    assert settings.exchanges == ()
    assert settings.quote_preference[:2] == ("USD", "USDT")
    assert not settings.secrets_key


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30", (30, {})),
        ("coinbase=25,binance=50", (20, {"coinbase": 25, "binance": 50})),
        ("30, Binance=50", (30, {"binance": 50})),
        ("", (20, {})),
    ],
)
def test_parse_top(text: str, expected: tuple[int, dict[str, int]]) -> None:
    assert parse_top(text, 20) == expected


@pytest.mark.parametrize("text", ["x", "binance=", "binance=-1", "=3x"])
def test_parse_top_refuses_garbage(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_top(text, 20)


def test_environment_then_flags() -> None:
    environ = {
        "LIVERMORE_SYMBOLS_TOP_N": "15",
        "LIVERMORE_SYMBOLS_TOP": "binance=40",
        "LIVERMORE_SYMBOLS_MIN_VALUE_USD": "25",
        "LIVERMORE_SYMBOLS_EXCHANGES": "Coinbase,binance",
        "LIVERMORE_SECRETS_KEY": "k",
    }
    settings, _ = parse([], environ)
    assert settings.top_for("coinbase") == 15 and settings.top_for("BINANCE") == 40
    assert settings.min_value_usd == 25 and settings.exchanges == ("coinbase", "binance")
    assert settings.secrets_key.reveal() == "k"
    assert "k" not in repr(settings.secrets_key)

    settings, _ = parse(
        ["--top", "coinbase=25", "--min-value", "5", "--exchange", "coinbase", "--once"], environ
    )
    assert settings.top_for("coinbase") == 25 and settings.top_for("binance") == 40
    assert settings.min_value_usd == 5 and settings.exchanges == ("coinbase",) and settings.once


def test_bad_values_fail_at_start() -> None:
    with pytest.raises(ConfigError):
        parse([], {"LIVERMORE_SYMBOLS_TOP_N": "many"})
    with pytest.raises(ConfigError):
        parse(["--interval", "0"], {})


def test_exchange_ca_file_as_the_ingestor_reads_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The symbol manager calls the venues' REST too: it trusts the same extra CA file."""
    assert parse([], {})[0].exchange_ca_file == ""
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    settings, _ = parse([], {"LIVERMORE_EXCHANGE_CA_FILE": str(pem)})
    assert settings.exchange_ca_file == str(pem)
    with pytest.raises(ConfigError, match="not a readable file"):
        parse([], {"LIVERMORE_EXCHANGE_CA_FILE": str(tmp_path / "missing.pem")})
