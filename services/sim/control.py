"""The control API under `/_sim/` (served on both venue ports): status, faults and truth."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from services.sim.faults import FaultError
from services.sim.intervals import TIMEFRAME_MS

if TYPE_CHECKING:
    from services.sim.server import Simulator


def control_routes(sim: Simulator) -> list[web.RouteDef]:
    async def status(request: web.Request) -> web.Response:
        return web.json_response(sim.status())

    async def faults_get(request: web.Request) -> web.Response:
        return web.json_response(sim.faults.status())

    async def faults_post(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise FaultError("the body must be a JSON object")
            return web.json_response(sim.faults.apply(body))
        except (FaultError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    async def truth(request: web.Request) -> web.Response:
        try:
            return web.json_response(_truth(sim, request))
        except (KeyError, ValueError) as exc:
            return web.json_response({"error": f"bad query: {exc}"}, status=400)

    return [
        web.get("/_sim/status", status),
        web.get("/_sim/faults", faults_get),
        web.post("/_sim/faults", faults_post),
        web.get("/_sim/truth", truth),
    ]


def _truth(sim: Simulator, request: web.Request) -> dict[str, Any]:
    """`?exchange=binance&symbol=BTCUSDT&timeframe=1m[&start=ms][&end=ms][&expected=1]`."""
    q = request.query
    exchange = q["exchange"]
    if exchange == "binance_us":
        exchange = "binance"
    symbol, timeframe = q["symbol"], q["timeframe"]
    if exchange not in sim.markets or symbol not in sim.markets[exchange].by_name:
        raise ValueError("unknown exchange or symbol")
    if timeframe not in TIMEFRAME_MS:
        raise ValueError("unknown timeframe")
    start, end = int(q.get("start", 0)), int(q.get("end", 2**62))
    if q.get("expected") in ("1", "true"):
        end = min(end, sim.clock.now_ms())
        start = max(start, end - 1000 * TIMEFRAME_MS[timeframe])
        candles = sim.truth.expected(exchange, symbol, timeframe, start, end)
    else:
        candles = sim.truth.candles(exchange, symbol, timeframe, start, end)
    return {
        "exchange": exchange,
        "symbol": symbol,
        "timeframe": timeframe,
        "candles": msgspec.to_builtins(candles),
    }
