"""The `livermore up` sequence and the supervisor that owns every child process.

servers     Redis, Postgres: the configured ones, or embedded ones started here
migrate     `livermore db migrate` (creates the database), must exit 0
sim         `livermore sim --point-db …` unless --live; waits for its ready line
services    one ingestor per exchange, indicators, alerts, symbols, gateway
ready       every health check passes → the admin page's address is printed
stop        SIGINT/SIGTERM: services first, then the simulator, then the servers; each gets
            its stop signal, a grace period, then SIGKILL (a second Ctrl-C skips the grace)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path

import aiohttp

from livermore_common.config import ConfigError
from livermore_common.keys import KeySpace
from livermore_common.lifecycle import check_health
from livermore_common.migrate import redact_url

from . import embedded
from .children import Child, Output
from .config import UpSettings
from .credentials import SECRETS_FILE, Credentials
from .endpoints import restore_public_endpoints
from .plan import ChildSpec, admin_url, migrate_spec, service_specs, sim_spec

SERVERS, SIMULATOR, SERVICES = 0, 1, 2
SERVER_START_S = 60.0
SIM_READY_S = 60.0
READY_S = 120.0
POLL_S = 0.25


class StartupError(RuntimeError):
    """A step of the start sequence failed; the message says which and what to do."""


class Supervisor:
    """Owns the children in tiers; `aclose` stops the tiers last-started first."""

    def __init__(self, settings: UpSettings, env: Mapping[str, str], output: Output) -> None:
        self.settings = settings
        self.env = dict(env)
        self.output = output
        self.stop = asyncio.Event()
        self.force = asyncio.Event()
        self._tiers: dict[int, list[Child]] = {SERVERS: [], SIMULATOR: [], SERVICES: []}

    async def launch(
        self, spec: ChildSpec, tier: int, on_line: Callable[[str], None] | None = None
    ) -> Child:
        if spec.env is None and tier != SERVERS:
            spec = dataclasses.replace(spec, env=self.env)
        child = Child(spec, self.output, on_line=on_line)
        try:
            await child.start()
        except OSError as exc:
            raise StartupError(f"cannot start {spec.name}: {exc}") from None
        self._tiers[tier].append(child)
        return child

    @property
    def children(self) -> list[Child]:
        return [c for tier in self._tiers.values() for c in tier]

    async def aclose(self) -> bool:
        """Stop everything; True when every child's last run exited 0."""
        clean = True
        for tier in (SERVICES, SIMULATOR, SERVERS):
            children = self._tiers[tier]
            codes = await asyncio.gather(
                *(c.stop(self.settings.grace_s, self.force) for c in children)
            )
            for child, code in zip(children, codes, strict=True):
                if code not in (0, None):
                    clean = False
                    self.output.say(f"{child.name} exited with {code}")
            children.clear()
        return clean


async def _until(probe: Callable[[], Awaitable[bool]], child: Child, what: str) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while not await probe():
        if not child.running:
            raise StartupError(f"{what} exited with {child.exit_code} while starting")
        if time.monotonic() > deadline:
            raise StartupError(f"{what} did not answer within {SERVER_START_S:g} s")
        await asyncio.sleep(POLL_S)


def _no_server(what: str, url: str, why: str) -> StartupError:
    return StartupError(
        f"no {what} answers at {redact_url(url)} and {why}; start one, set the URL, or install "
        "the embedded servers: pip install 'livermore[embedded]'"
    )


async def ensure_redis(sup: Supervisor) -> None:
    url = sup.settings.common.redis_url
    if await embedded.redis_answers(url):
        sup.output.say(f"using Redis at {redact_url(url)}")
        return
    if sup.settings.embedded == "never" or not embedded.endpoint(url, 6379).local:
        raise _no_server("Redis", url, "it is not a local address (or --embedded never)")
    binary = embedded.find_redis_server(system=sup.settings.embedded == "auto")
    if binary is None:
        raise _no_server("Redis", url, "no redis-server binary was found")
    data = Path(sup.settings.state_dir) / "redis"
    sup.output.say(f"starting an embedded Redis ({binary}) with its data in {data}")
    child = await sup.launch(embedded.redis_spec(url, data, binary), SERVERS)
    await _until(lambda: embedded.redis_answers(url), child, "the embedded Redis")


async def ensure_postgres(sup: Supervisor) -> None:
    url = sup.settings.common.database_url
    if await embedded.postgres_answers(url):
        sup.output.say(f"using Postgres at {redact_url(url)}")
        return
    if sup.settings.embedded == "never" or not embedded.endpoint(url, 5432).local:
        raise _no_server("Postgres", url, "it is not a local address (or --embedded never)")
    bindir = embedded.find_postgres_bindir(system=sup.settings.embedded == "auto")
    if bindir is None:
        raise _no_server("Postgres", url, "no postgres/initdb binaries were found")
    plan = embedded.prepare_postgres(url, Path(sup.settings.state_dir), bindir)
    sup.output.say(f"starting an embedded Postgres ({bindir}) with its data in {plan.data_dir}")
    if plan.initdb is not None:
        init = await sup.launch(plan.initdb, SERVERS)
        if await init.wait() != 0:
            raise StartupError(f"initdb failed with exit code {init.exit_code}")
    child = await sup.launch(plan.server, SERVERS)
    await _until(lambda: embedded.postgres_answers(url), child, "the embedded Postgres")


async def migrate(sup: Supervisor) -> None:
    child = await sup.launch(migrate_spec(), SERVICES)
    code = await child.wait()
    if code != 0:
        raise StartupError(f"the migrations failed (exit code {code}); see [migrate] above")


async def start_simulator(sup: Supervisor) -> None:
    ready = asyncio.Event()

    def on_line(line: str) -> None:
        if line.startswith("sim ready"):
            ready.set()

    child = await sup.launch(sim_spec(sup.settings), SIMULATOR, on_line=on_line)
    deadline = time.monotonic() + SIM_READY_S
    while not ready.is_set():
        if not child.running:
            raise StartupError(f"the simulator exited with {child.exit_code} while starting")
        if time.monotonic() > deadline:
            raise StartupError(f"the simulator was not ready within {SIM_READY_S:g} s")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), POLL_S)


async def _gateway_answers(url: str) -> bool:
    timeout = aiohttp.ClientTimeout(total=2)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.get(f"{url}healthz") as response,
        ):
            return response.status == 200
    except (aiohttp.ClientError, OSError, TimeoutError):
        return False


async def _healthy(settings: UpSettings, name: str) -> bool:
    if name == "gateway":
        return await _gateway_answers(admin_url(settings))
    keys = KeySpace(settings.common.namespace)
    try:
        return await check_health(settings.common.redis_url, keys, name)
    except (OSError, ConnectionError):
        return False


async def wait_healthy(settings: UpSettings, names: list[str]) -> list[str]:
    """Poll every service's health until all pass or READY_S runs out; returns the laggards."""
    pending = list(names)
    deadline = time.monotonic() + READY_S
    while pending and time.monotonic() < deadline:
        results = await asyncio.gather(*(_healthy(settings, n) for n in pending))
        pending = [n for n, ok in zip(pending, results, strict=True) if not ok]
        if pending:
            await asyncio.sleep(POLL_S * 2)
    return pending


def announce(sup: Supervisor, credentials: Credentials, laggards: list[str]) -> None:
    say = sup.output.say
    if laggards:
        say(f"not healthy yet: {', '.join(laggards)} (they keep retrying)")
    else:
        say("every service is healthy")
    if credentials.token is not None:
        # The one place a secret is shown: the user needs it to sign in to the admin page.
        where = Path(sup.settings.state_dir) / SECRETS_FILE
        say(f"gateway token (generated, kept in {where}): {credentials.token.reveal()}")
    say(f"admin page {admin_url(sup.settings)}")


async def start_all(sup: Supervisor, credentials: Credentials) -> None:
    await ensure_redis(sup)
    await ensure_postgres(sup)
    await migrate(sup)
    if sup.settings.live:
        for name in await restore_public_endpoints(sup.settings.common.database_url):
            sup.output.say(f"{name}: pointed back at its public endpoints (a simulator had it)")
    else:
        await start_simulator(sup)
    specs = service_specs(sup.settings)
    for spec in specs:
        await sup.launch(spec, SERVICES)
    announce(sup, credentials, await wait_healthy(sup.settings, [s.name for s in specs]))


@contextlib.contextmanager
def _signals(stop: asyncio.Event, force: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        (force if stop.is_set() else stop).set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _run_until_stopped(sup: Supervisor, credentials: Credentials) -> BaseException | None:
    """Start everything and wait for a stop signal (a signal during start-up cancels it).
    Returns the error that ended the start-up, if any."""
    starting = asyncio.create_task(start_all(sup, credentials))
    stopping = asyncio.create_task(sup.stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
        await asyncio.wait({starting})
        error = None if starting.cancelled() else starting.exception()
        if error is None and not stopping.done():
            await stopping
        return error
    finally:
        stopping.cancel()
        starting.cancel()


async def run_up(
    settings: UpSettings, env: Mapping[str, str], credentials: Credentials, output: Output
) -> int:
    """Start everything, wait for a stop signal, stop everything. 0 = every child exited 0."""
    sup = Supervisor(settings, env, output)
    with _signals(sup.stop, sup.force):
        try:
            error = await _run_until_stopped(sup, credentials)
            if isinstance(error, StartupError | ConfigError):
                output.say(f"error: {error}")
        finally:
            output.say("stopping")
            clean = await sup.aclose()
    if error is not None and not isinstance(error, StartupError | ConfigError):
        raise error
    output.say("stopped" if clean else "stopped; some processes did not exit cleanly")
    return 1 if error is not None or not clean else 0
