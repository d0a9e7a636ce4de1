"""`livermore sim`: serve the Coinbase and Binance protocols on localhost until stopped."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from livermore_common.logs import configure_logging, get_logger
from services.sim.config import SimConfig
from services.sim.pointdb import point_db
from services.sim.server import Simulator


def _start_time(text: str) -> int:
    """Epoch milliseconds, or an ISO 8601 time (UTC unless it says otherwise)."""
    if text.isdigit():
        return int(text)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _advertised(url: str, host: str | None) -> str:
    """`url` with its host replaced by `host` (the port kept); unchanged when `host` is None."""
    if not host:
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{host}:{parts.port}"))


def parse_args(argv: Sequence[str]) -> tuple[SimConfig, str | None, str | None]:
    p = argparse.ArgumentParser(prog="livermore sim", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    # In a container the sim binds 0.0.0.0 but others reach it by its service name.
    p.add_argument("--advertise-host", default=None, help="host in rows and URLs (--host)")
    p.add_argument("--binance-port", type=int, default=0)
    p.add_argument("--coinbase-port", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--symbols", type=int, default=50)
    p.add_argument("--speed", type=float, default=1.0, help="sim seconds per real second")
    p.add_argument("--start-time", type=_start_time, default=None, help="epoch ms or ISO time")
    p.add_argument("--history-minutes", type=int, default=2 * 1440)
    p.add_argument("--firehose", action="store_true", help="Binance 1m klines as fast as read")
    p.add_argument("--firehose-minutes", type=int, default=30)
    p.add_argument(
        "--tls",
        action="store_true",
        help="serve https:// and wss:// with a self-signed certificate (its PEM: ca= on the "
        "ready line)",
    )
    p.add_argument("--binance-ping-interval", type=float, default=20.0)
    p.add_argument("--coinbase-public-rps", type=float, default=10.0)
    p.add_argument("--point-db", metavar="URL", default=None, help="update its exchanges rows")
    a = p.parse_args(list(argv))
    config = SimConfig(
        host=a.host,
        binance_port=a.binance_port,
        coinbase_port=a.coinbase_port,
        seed=a.seed,
        symbols=a.symbols,
        speed=a.speed,
        start_time_ms=a.start_time,
        history_minutes=a.history_minutes,
        firehose=a.firehose,
        firehose_minutes=a.firehose_minutes,
        tls=a.tls,
        tls_hosts=(a.advertise_host,) if a.advertise_host else (),
        binance_ping_interval_s=a.binance_ping_interval,
        coinbase_public_rps=a.coinbase_public_rps,
    )
    return config, a.point_db, a.advertise_host


async def serve(config: SimConfig, database_url: str | None, advertise: str | None = None) -> None:
    log = get_logger("sim")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with Simulator(config) as sim:
        if database_url:
            urls = {
                venue: (_advertised(ws, advertise), _advertised(rest, advertise))
                for venue, ws, rest in (
                    ("coinbase", sim.coinbase_ws_url, sim.coinbase_url),
                    ("binance", sim.binance_ws_url, sim.binance_url),
                )
            }
            updated = await point_db(database_url, urls)
            log.info("exchanges rows pointed at the simulator", rows=updated)
        coinbase, binance = (_advertised(u, advertise) for u in (sim.coinbase_url, sim.binance_url))
        ca = f" ca={sim.ca_file}" if sim.ca_file else ""
        print(f"sim ready coinbase={coinbase} binance={binance}{ca}", flush=True)
        await stop.wait()
    log.info("simulator stopped")


def main(argv: Sequence[str] | None = None) -> int:
    config, database_url, advertise = parse_args(sys.argv[1:] if argv is None else argv)
    configure_logging(service="sim")
    asyncio.run(serve(config, database_url, advertise))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
