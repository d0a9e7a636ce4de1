"""What `livermore up` runs: the command line of every child, from the settings (no I/O)."""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass, field

from .config import UpSettings


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One supervised process. `env` None = the supervisor's environment."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str] | None = field(default=None, compare=False, repr=False)
    # Postgres shuts down fast on SIGINT; SIGTERM would wait for every client to leave.
    stop_signal: signal.Signals = signal.SIGTERM
    # Run as this user (embedded Postgres refuses to run as root).
    user: str | None = None
    restart: bool = True


def livermore(*args: str) -> tuple[str, ...]:
    """The `livermore` command through this interpreter (works without the script on PATH)."""
    return (sys.executable, "-m", "services.cli", *args)


def migrate_spec() -> ChildSpec:
    return ChildSpec("migrate", livermore("db", "migrate"), restart=False)


def sim_spec(settings: UpSettings) -> ChildSpec:
    argv = livermore(
        "sim",
        "--symbols",
        str(settings.sim_symbols),
        "--speed",
        f"{settings.sim_speed:g}",
        "--history-minutes",
        str(settings.sim_history_minutes),
        "--point-db",
        settings.common.database_url,
    )
    return ChildSpec("sim", argv)


def ingestor_spec(settings: UpSettings, exchange: str) -> ChildSpec:
    args = [
        "ingestor",
        "--exchange",
        exchange,
        "--timeframes",
        ",".join(settings.timeframes),
        "--history",
        str(settings.history),
    ]
    if exchange in settings.autostart:
        args.append("--autostart")
    return ChildSpec(f"ingestor-{exchange}", livermore(*args))


def service_specs(settings: UpSettings) -> list[ChildSpec]:
    """Every long-running service: one ingestor per exchange, then the shared workers."""
    specs = [ingestor_spec(settings, exchange) for exchange in settings.exchanges]
    specs += [
        ChildSpec("indicators", livermore("indicators")),
        ChildSpec("alerts", livermore("alerts")),
        ChildSpec("symbols", livermore("symbols", "--exchanges", ",".join(settings.exchanges))),
        ChildSpec("gateway", livermore("gateway")),
    ]
    return specs


def admin_url(settings: UpSettings) -> str:
    host = settings.gateway_host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.gateway_port}/"
