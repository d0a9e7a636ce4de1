"""Running the gateway as a service (under the shared lifecycle runner) and its health probe."""

from __future__ import annotations

import http.client

from aiohttp import web

from livermore_common.lifecycle import ServiceContext

from .app import create_app
from .config import GatewaySettings


async def serve(ctx: ServiceContext, settings: GatewaySettings) -> None:
    """Serve until the runner's stop event; open SSE streams are ended on the way out."""
    app = create_app(settings, redis=ctx.redis)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        ctx.log.info(
            "gateway listening",
            admin_page=f"http://{_display_host(settings.host)}:{settings.port}/",
            commands_enabled=bool(settings.common.control_secret),
        )
        await ctx.stop.wait()
    finally:
        await runner.cleanup()


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


def check_health(host: str, port: int, timeout: float = 3.0) -> bool:
    """`--check`: GET /healthz on the configured port answers 200."""
    conn = http.client.HTTPConnection(_display_host(host), port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()
