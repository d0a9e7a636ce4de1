"""The simulator as an async context manager: two aiohttp servers (Binance, Coinbase), each with
its venue's REST and WebSocket paths plus the control API under `/_sim/`.

    async with Simulator(SimConfig(symbols=20, speed=60)) as sim:
        sim.binance_url, sim.coinbase_url    # http://127.0.0.1:PORT (ws:// twins on *_ws_url)
        sim.truth, sim.faults, sim.clock, sim.markets
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from services.sim.binance import BinanceRest
from services.sim.binance_ws import BinanceStreams
from services.sim.clock import SimClock
from services.sim.coinbase import CoinbaseRest
from services.sim.coinbase_ws import CoinbaseFeed
from services.sim.config import SimConfig
from services.sim.control import control_routes
from services.sim.faults import Faults
from services.sim.firehose import Firehose
from services.sim.market import Market, markets
from services.sim.tls import SimTls
from services.sim.truth import Truth


class Simulator:
    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.clock = SimClock(start_ms=self.config.start_time_ms, speed=self.config.speed)
        self.markets: dict[str, Market] = markets(self.config)
        self.truth = Truth(self.markets)
        self.faults = Faults()
        parts = (self.clock, self.truth, self.faults, self.config)
        self.binance_streams = BinanceStreams(self.markets["binance"], *parts)
        self.coinbase_feed = CoinbaseFeed(self.markets["coinbase"], *parts)
        self.firehose = Firehose(self.markets["binance"], *parts) if self.config.firehose else None
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._ports: dict[str, int] = {}
        self._tls: SimTls | None = None
        self._closed = False

    # ---- addresses ----------------------------------------------------------------------

    def _url(self, scheme: str, exchange: str) -> str:
        secure = "s" if self.config.tls else ""
        return f"{scheme}{secure}://{self.config.host}:{self._ports[exchange]}"

    @property
    def binance_url(self) -> str:
        return self._url("http", "binance")

    @property
    def binance_ws_url(self) -> str:
        return self._url("ws", "binance")

    @property
    def coinbase_url(self) -> str:
        return self._url("http", "coinbase")

    @property
    def coinbase_ws_url(self) -> str:
        return self._url("ws", "coinbase")

    @property
    def ca_file(self) -> str | None:
        """With `tls`: the PEM of the certificate both ports serve (clients trust it); else None."""
        return self._tls.ca_file if self._tls is not None else None

    # ---- lifecycle ----------------------------------------------------------------------

    def _binance_app(self) -> web.Application:
        # 1024 streams in one `/stream?streams=` URL take ~30 kB; aiohttp's default line is 8 kB.
        app = web.Application(handler_args={"max_line_size": 64 * 1024})
        app.add_routes(BinanceRest(self.markets["binance"], *self._parts()).routes())
        ws = self.firehose.handle if self.firehose else self.binance_streams.handle
        app.add_routes([web.get("/stream", ws), web.get("/ws", ws), web.get("/ws/{tail}", ws)])
        app.add_routes(control_routes(self))
        return app

    def _coinbase_app(self) -> web.Application:
        app = web.Application()
        app.add_routes(CoinbaseRest(self.markets["coinbase"], *self._parts()).routes())
        app.add_routes([web.get("/", self.coinbase_feed.handle)])
        app.add_routes(control_routes(self))
        return app

    def _parts(self) -> tuple[Any, ...]:
        return (self.clock, self.truth, self.faults, self.config)

    async def start(self) -> Simulator:
        if self.firehose is not None:
            self.firehose.prepare()  # before listening: a client never waits on rendering
        if self.config.tls:
            self._tls = SimTls([self.config.host, *self.config.tls_hosts])
        ssl_context = self._tls.context if self._tls is not None else None
        apps = {"binance": self._binance_app(), "coinbase": self._coinbase_app()}
        ports = {"binance": self.config.binance_port, "coinbase": self.config.coinbase_port}
        for name, app in apps.items():
            runner = web.AppRunner(app, handle_signals=False, access_log=None)
            await runner.setup()
            self._runners.append(runner)
            site = web.TCPSite(runner, self.config.host, ports[name], ssl_context=ssl_context)
            await site.start()
            self._ports[name] = int(runner.addresses[0][1])  # port 0: the one chosen
        if self.firehose is None:
            self._tasks.append(asyncio.create_task(self.binance_streams.run()))
        return self

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.binance_streams.aclose()
        await self.coinbase_feed.aclose()
        if self.firehose is not None:
            await self.firehose.aclose()
        for runner in reversed(self._runners):
            with contextlib.suppress(Exception):
                await runner.cleanup()
        if self._tls is not None:
            self._tls.cleanup()

    async def __aenter__(self) -> Simulator:
        try:
            return await self.start()
        except BaseException:
            await self.aclose()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def status(self) -> dict[str, Any]:
        return {
            "now_ms": self.clock.now_ms(),
            "start_ms": self.clock.start_ms,
            "speed": self.clock.speed,
            "seed": self.config.seed,
            "symbols": {ex: [s.name for s in m.symbols] for ex, m in self.markets.items()},
            "connections": {
                "binance": len(self.binance_streams.connections)
                + (len(self.firehose.connections) if self.firehose else 0),
                "coinbase": len(self.coinbase_feed.connections),
            },
            "urls": {"binance": self.binance_url, "coinbase": self.coinbase_url},
        }
