"""Every compose service's command, run natively against the local Redis and Postgres.

The containers' environment (from the compose file, with the required secrets filled in) is
adapted to this machine: local server URLs, this test's database and key namespace, free ports,
and the simulator reached on 127.0.0.1 instead of by its service name. `migrate` must exit 0;
every other service must pass its own compose health check, then exit 0 on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import pytest

from tests.helpers import eventually
from tests.integration.deploy.procs import LIVERMORE, Lines, base_env, free_port
from tests.unit.deploy.compose import REQUIRED, interpolate, livermore_services, load

pytestmark = pytest.mark.integration

# Flags whose compose values only make sense inside the compose network.
SIM_PORTS = ("--coinbase-port", "--binance-port")


def _native_env(service: dict[str, Any], local: dict[str, str]) -> dict[str, str]:
    env = interpolate(service.get("environment", {}), REQUIRED)
    return base_env() | {k: str(v) for k, v in env.items()} | local


def _native_command(args: list[str], ports: dict[str, int], database_url: str) -> list[str]:
    out = list(args)
    for i, flag in enumerate(out[:-1]):
        if flag in ("--host", "--advertise-host"):
            out[i + 1] = "127.0.0.1"
        elif flag in SIM_PORTS:
            out[i + 1] = str(ports[flag])
        elif flag == "--point-db":
            out[i + 1] = database_url
    return out


def _native_check(
    test: list[str], compose_ports: dict[str, str], ports: dict[str, int]
) -> list[str]:
    assert test[0] == "CMD"
    argv = [*LIVERMORE] if test[1] == "livermore" else [sys.executable]
    rest = []
    for arg in test[2:]:
        for flag, port in compose_ports.items():
            arg = arg.replace(f":{port}/", f":{ports[flag]}/")
        rest.append(arg)
    return argv + rest


async def _run(argv: list[str], env: dict[str, str]) -> int:
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(proc.wait(), 60)


class Started:
    def __init__(self, name: str, proc: asyncio.subprocess.Process, check: list[str], env):
        assert proc.stdout is not None
        self.name, self.proc, self.check, self.env = name, proc, check, env
        self.out = Lines(proc.stdout)
        self.healthy = False


async def test_every_compose_service_runs_natively(
    redis_url: str, database_url: str, namespace: str, redis_client
) -> None:
    services = livermore_services(load())
    local = {
        "LIVERMORE_REDIS_URL": redis_url,
        "LIVERMORE_DATABASE_URL": database_url,
        "LIVERMORE_NAMESPACE": namespace,
        "LIVERMORE_LOG_FORMAT": "console",
    }
    gateway_port = free_port()
    ports = {flag: free_port() for flag in SIM_PORTS}

    migrate = services.pop("migrate")
    assert await _run([*LIVERMORE, *migrate["command"]], _native_env(migrate, local)) == 0

    started: list[Started] = []
    try:
        # The simulator first (the others wait for it under compose), then the rest at once.
        for name in ["sim", *(n for n in services if n != "sim")]:
            svc = services[name]
            env = _native_env(svc, local)
            if name == "gateway":
                env["LIVERMORE_GATEWAY_HOST"] = "127.0.0.1"
                env["LIVERMORE_GATEWAY_PORT"] = str(gateway_port)
            args = interpolate(svc["command"], REQUIRED)
            compose_ports = {f: args[args.index(f) + 1] for f in SIM_PORTS if f in args}
            argv = [*LIVERMORE, *_native_command(args, ports, database_url)]
            proc = await asyncio.create_subprocess_exec(
                *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
            )
            check = _native_check(svc["healthcheck"]["test"], compose_ports, ports)
            started.append(Started(name, proc, check, env))
            if name == "sim":
                sim = started[-1]
                await eventually(lambda: sim.out.first("sim ready"), timeout=30)

        async def all_healthy() -> bool:
            pending = [s for s in started if not s.healthy]
            codes = await asyncio.gather(*(_run(s.check, s.env) for s in pending))
            for s, code in zip(pending, codes):
                s.healthy = code == 0
                assert s.proc.returncode is None, f"{s.name} exited:\n{s.out.tail()}"
            return all(s.healthy for s in started)

        await eventually(all_healthy, timeout=60, interval=0.5)
        assert {s.name for s in started} == set(services)

        for s in started:
            s.proc.send_signal(signal.SIGTERM)
        for s in started:
            code = await asyncio.wait_for(s.proc.wait(), 30)
            assert code == 0, f"{s.name} exited with {code} on SIGTERM:\n{s.out.tail()}"
    finally:
        for s in started:
            if s.proc.returncode is None:
                s.proc.kill()
                await s.proc.wait()
            await s.out.aclose()
