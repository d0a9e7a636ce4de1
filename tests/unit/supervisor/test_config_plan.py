"""`livermore up` settings and the command lines it runs (no processes started)."""

from __future__ import annotations

import signal

import pytest

from livermore_common.config import ConfigError
from services.cli import COMMANDS
from services.supervisor.config import parse
from services.supervisor.plan import admin_url, migrate_spec, service_specs, sim_spec

ENV = {"LIVERMORE_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/demo"}


def test_with_the_simulator_every_exchange_autostarts_by_default() -> None:
    settings = parse([], ENV)
    assert not settings.live
    assert settings.autostart == settings.exchanges == ("coinbase", "binance")


def test_live_starts_idle_unless_asked_and_autostart_is_repeatable() -> None:
    assert parse(["--live"], ENV).autostart == ()
    s = parse(["--live", "--autostart", "Binance", "--autostart", "coinbase"], ENV)
    assert s.autostart == ("binance", "coinbase")
    assert parse(["--no-autostart"], ENV).autostart == ()


def test_autostart_must_name_a_served_exchange() -> None:
    with pytest.raises(ConfigError, match="kraken"):
        parse(["--autostart", "kraken"], ENV)
    with pytest.raises(ConfigError, match="coinbase"):
        parse(["--exchanges", "binance", "--autostart", "coinbase"], ENV)


@pytest.mark.parametrize(
    "argv", [["--timeframes", "7m"], ["--timeframes", ""], ["--sim-speed", "0"], ["--history", "0"]]
)
def test_bad_choices_fail_at_start(argv: list[str]) -> None:
    with pytest.raises(ConfigError):
        parse(argv, ENV)


def test_state_dir_and_gateway_address_come_from_the_environment() -> None:
    env = ENV | {
        "LIVERMORE_STATE_DIR": "/tmp/lv-state",
        "LIVERMORE_GATEWAY_HOST": "0.0.0.0",
        "LIVERMORE_GATEWAY_PORT": "9090",
    }
    settings = parse([], env)
    assert settings.state_dir == "/tmp/lv-state"
    assert admin_url(settings) == "http://127.0.0.1:9090/"
    assert parse(["--state-dir", "elsewhere"], env).state_dir == "elsewhere"


def test_demo_history_seeds_macdv_and_the_simulator_serves_it() -> None:
    settings = parse([], ENV)
    assert settings.history >= 35  # MACD-V needs 26 + 9 closed candles
    longest_minutes = 60  # 1h is the longest default timeframe
    assert settings.sim_history_minutes >= settings.history * longest_minutes


def _args(argv: tuple[str, ...]) -> list[str]:
    assert argv[1:3] == ("-m", "services.cli")
    return list(argv[3:])


def test_every_child_is_a_livermore_command() -> None:
    settings = parse(["--autostart", "coinbase"], ENV)
    specs = [migrate_spec(), sim_spec(settings), *service_specs(settings)]
    for spec in specs:
        assert _args(spec.argv)[0] in COMMANDS
        assert spec.stop_signal == signal.SIGTERM
    names = [s.name for s in specs]
    assert names == [
        "migrate",
        "sim",
        "ingestor-coinbase",
        "ingestor-binance",
        "indicators",
        "alerts",
        "symbols",
        "gateway",
    ]
    assert not migrate_spec().restart


def test_only_the_named_ingestor_autostarts_and_the_sim_points_the_database() -> None:
    settings = parse(["--autostart", "coinbase"], ENV)
    by_name = {s.name: _args(s.argv) for s in service_specs(settings)}
    assert "--autostart" in by_name["ingestor-coinbase"]
    assert "--autostart" not in by_name["ingestor-binance"]
    sim = _args(sim_spec(settings).argv)
    assert sim[sim.index("--point-db") + 1] == ENV["LIVERMORE_DATABASE_URL"]
