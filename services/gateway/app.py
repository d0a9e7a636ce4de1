"""The gateway's aiohttp application factory: routes, middlewares and the resources they use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from livermore_common.control import ControlClient
from livermore_common.db import Database
from livermore_common.keys import KeySpace
from livermore_common.logs import get_logger
from livermore_common.redisbus import connect

from . import api, auth
from .api import STATE, ApiError, CommandRelay, GatewayState, error_response
from .catalog import Catalog, DatabaseCatalog
from .config import GatewaySettings
from .events import HUB, EventHub, events_handler

MAX_BODY_BYTES = 64 * 1024
_log = get_logger(__name__)


@web.middleware
async def errors_middleware(request: web.Request, handler: api.Handler) -> web.StreamResponse:
    """JSON `{"error": reason}` for every failure under /api; backends down become 503."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.reason)
    except web.HTTPException as exc:
        if exc.status >= 400 and request.path.startswith("/api"):
            return error_response(exc.status, exc.reason)
        raise
    except (RedisError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        _log.warning("backend unavailable", path=request.path, error=type(exc).__name__)
        return error_response(503, "a backend (Redis or Postgres) is unavailable; try again")


async def admin_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(api.STATIC_DIR / "admin.html", headers={"Cache-Control": "no-cache"})


def create_app(
    settings: GatewaySettings,
    *,
    redis: aioredis.Redis | None = None,
    catalog: Catalog | None = None,
    control: CommandRelay | None = None,
) -> web.Application:
    """The application; resources not passed in are opened from `settings` on startup."""
    app = web.Application(
        middlewares=[errors_middleware, auth.auth_middleware(settings.token)],
        client_max_size=MAX_BODY_BYTES,
    )
    app.add_routes(api.routes)
    app.router.add_get("/api/events", events_handler)
    app.router.add_get("/", admin_page)
    app.router.add_static("/static", api.STATIC_DIR, follow_symlinks=False)
    app.cleanup_ctx.append(_resources(settings, redis, catalog, control))
    app.on_shutdown.append(_end_streams)
    return app


def _resources(
    settings: GatewaySettings,
    redis: aioredis.Redis | None,
    catalog: Catalog | None,
    control: CommandRelay | None,
) -> Any:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        keys = KeySpace(settings.common.namespace)
        async with AsyncExitStack() as stack:
            if redis is None:
                client = await stack.enter_async_context(
                    connect(settings.common.redis_url, client_name="gateway")
                )
            else:
                client = redis
            cat = catalog or await _open_catalog(stack, settings.common.database_url)
            relay = control or await _open_control(stack, client, keys, settings)
            hub = EventHub(client, keys)
            await hub.start()
            stack.push_async_callback(hub.aclose)
            app[HUB] = hub
            app[STATE] = GatewayState(settings, keys, client, cat, hub, relay)
            yield

    return ctx


async def _open_catalog(stack: AsyncExitStack, database_url: str) -> Catalog:
    db = await stack.enter_async_context(Database(database_url))
    return DatabaseCatalog(db)


async def _open_control(
    stack: AsyncExitStack, redis: aioredis.Redis, keys: KeySpace, settings: GatewaySettings
) -> CommandRelay | None:
    if not settings.common.control_secret:
        _log.warning("LIVERMORE_CONTROL_SECRET is not set: start/stop requests will be refused")
        return None
    client: CommandRelay = await stack.enter_async_context(
        ControlClient(redis, keys, settings.common.control_secret.reveal())
    )
    return client


async def _end_streams(app: web.Application) -> None:
    if HUB in app:
        app[HUB].close_subscribers()
