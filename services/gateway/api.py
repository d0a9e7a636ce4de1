"""Handlers of the gateway's JSON API; every /api route is bearer-authenticated (see auth.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import msgspec
import redis.asyncio as aioredis
from aiohttp import web

from livermore_common import messages
from livermore_common.keys import KeySpace
from livermore_common.messages import ControlResponse

from . import auth, status
from .alerts import merge_alerts
from .catalog import Catalog, Row
from .config import GatewaySettings
from .events import EventHub

STATIC_DIR = Path(__file__).resolve().parent / "static"
OPENAPI_FILE = Path(__file__).resolve().parent / "openapi.yaml"
MAX_LIMIT = 500
MAX_COMMAND_TIMEOUT = 30.0
INGESTOR = "ingestor"
SYMBOL_MANAGER = "symbol manager"
REFRESH_TIMEOUT = MAX_COMMAND_TIMEOUT


class CommandRelay(Protocol):
    """What `livermore_common.control.ControlClient` offers the gateway."""

    async def send(
        self,
        command: str,
        exchange: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float = 5.0,
        expect: int = 1,
    ) -> list[ControlResponse]: ...


@dataclass(eq=False)
class GatewayState:
    settings: GatewaySettings
    keys: KeySpace
    redis: aioredis.Redis
    catalog: Catalog
    hub: EventHub
    control: CommandRelay | None  # None without LIVERMORE_CONTROL_SECRET: commands refused


STATE = web.AppKey("gateway_state", GatewayState)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
routes = web.RouteTableDef()


class ApiError(Exception):
    """Raised by handlers; the error middleware answers `{"error": reason}` with `status`."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class CommandBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Optional body of start/stop: extra command parameters and the wait for answers."""

    params: dict[str, Any] = {}
    timeout: float | None = None


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=messages.encode(data), status=status, content_type="application/json")


def error_response(status: int, reason: str, **extra: Any) -> web.Response:
    return json_response({"error": reason, **extra}, status=status)


def _state(request: web.Request) -> GatewayState:
    return request.app[STATE]


def _quoted(text: str) -> str:
    """User input echoed in an error, bounded so a huge path cannot bloat the answer."""
    return repr(text[:64])


async def _exchange(request: web.Request, name: str | None = None) -> Row:
    key = request.match_info["exchange"] if name is None else name
    row = await _state(request).catalog.get_exchange(key)
    if row is None:
        raise ApiError(404, f"unknown exchange {_quoted(key)}")
    return row


def _limit(request: web.Request, default: int = 50) -> int:
    text = request.query.get("limit")
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise ApiError(400, f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(text)


async def _exchange_filter(request: web.Request) -> Row | None:
    name = request.query.get("exchange", "").strip()
    return await _exchange(request, name) if name else None


def _summary(row: Row) -> dict[str, Any]:
    return {k: row.get(k) for k in ("id", "name", "display_name")}


# -- health, docs, session -------------------------------------------------------------------


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    try:
        async with asyncio.timeout(2):
            await _state(request).redis.ping()
    except (TimeoutError, OSError, aioredis.RedisError):
        return json_response({"status": "degraded", "redis": "unreachable"}, status=503)
    return json_response({"status": "ok"})


@routes.get("/api/openapi.yaml")
async def openapi(request: web.Request) -> web.FileResponse:
    return web.FileResponse(OPENAPI_FILE, headers={"Content-Type": "application/yaml"})


@routes.post("/api/session")
async def create_session(request: web.Request) -> web.Response:
    settings = _state(request).settings
    response = web.Response(status=204)
    response.set_cookie(
        auth.SESSION_COOKIE,
        auth.make_session_cookie(settings.token, settings.session_ttl_seconds),
        max_age=settings.session_ttl_seconds,
        path="/api/events",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


@routes.delete("/api/session")
async def delete_session(request: web.Request) -> web.Response:
    response = web.Response(status=204)
    response.del_cookie(auth.SESSION_COOKIE, path="/api/events")
    return response


# -- exchanges -------------------------------------------------------------------------------


async def _with_status(state: GatewayState, row: Row) -> dict[str, Any]:
    return {**row, **await status.read_status(state.redis, state.keys, int(row["id"]))}


@routes.get("/api/exchanges")
async def list_exchanges(request: web.Request) -> web.Response:
    state = _state(request)
    rows = await state.catalog.list_exchanges()
    items = await asyncio.gather(*(_with_status(state, row) for row in rows))
    return json_response({"exchanges": items})


@routes.get("/api/exchanges/{exchange}/status")
async def exchange_status(request: web.Request) -> web.Response:
    state = _state(request)
    body = await _with_status(state, await _exchange(request))
    return json_response(body)


@routes.post("/api/exchanges/{exchange}/start")
async def start_exchange(request: web.Request) -> web.Response:
    return await _relay(request, "start")


@routes.post("/api/exchanges/{exchange}/stop")
async def stop_exchange(request: web.Request) -> web.Response:
    return await _relay(request, "stop")


@routes.post("/api/exchanges/{exchange}/refresh-symbols")
async def refresh_symbols(request: web.Request) -> web.Response:
    # One symbol-manager replica claims the command and answers it (services/symbols/commands.py).
    return await _relay(request, "refresh-symbols", answered_by=SYMBOL_MANAGER)


async def _command_body(request: web.Request) -> CommandBody:
    raw = await request.read()
    if not raw.strip():
        return CommandBody()
    try:
        body = msgspec.json.decode(raw, type=CommandBody)
    except msgspec.MsgspecError as exc:
        raise ApiError(400, f"malformed body: {exc}") from None
    if body.timeout is not None and not 0 < body.timeout <= MAX_COMMAND_TIMEOUT:
        raise ApiError(400, f"timeout must be > 0 and <= {MAX_COMMAND_TIMEOUT:g} seconds")
    return body


async def _relay(request: web.Request, verb: str, answered_by: str = INGESTOR) -> web.Response:
    """Sign and publish `verb` for the exchange and wait for the final answers: one per live
    ingestor instance, or one for commands a single symbol manager claims."""
    state = _state(request)
    row = await _exchange(request)
    body = await _command_body(request)
    if state.control is None:
        raise ApiError(
            503, "LIVERMORE_CONTROL_SECRET is not set on the gateway, so it cannot sign commands"
        )
    timeout = body.timeout or state.settings.command_timeout
    if answered_by == SYMBOL_MANAGER and body.timeout is None:
        # A refresh reads the venue's REST (and every account's balances): give it longer than
        # a start/stop, as `livermore ctl refresh-symbols` does.
        timeout = max(timeout, REFRESH_TIMEOUT)
    name = str(row["name"])
    expect = 1
    if answered_by == INGESTOR:
        # Wait for every live instance's final answer (at least one), or the timeout.
        live = await status.live_instance_count(state.redis, state.keys, int(row["id"]), name)
        expect = max(1, live)
    responses = await state.control.send(
        verb, name, dict(body.params), timeout=timeout, expect=expect
    )
    return relay_result(verb, row, responses, timeout, answered_by)


def relay_result(
    verb: str,
    row: Row,
    responses: Sequence[ControlResponse],
    timeout: float,
    answered_by: str = INGESTOR,
) -> web.Response:
    """200 with the answers; 504 when nobody (or nobody finally) answered; 502 if all failed."""
    name = str(row["name"])
    answers = [msgspec.to_builtins(r) for r in responses]
    finals = [r for r in responses if r.status != "ack"]
    base = {"command": verb, "exchange": _summary(row), "responses": answers}
    if not responses:
        reason = (
            f"no {answered_by} answered {verb!r} for {name} within {timeout:g}s"
            f" (is {'an ingestor' if answered_by == INGESTOR else 'a symbol manager'} for"
            f" {name} running?)"
        )
        return error_response(504, reason, **base)
    if not finals:
        reason = (
            f"{answered_by} acknowledged {verb!r} for {name} but did not finish within {timeout:g}s"
        )
        return error_response(504, reason, **base)
    if all(r.status == "error" for r in finals):
        return error_response(502, finals[0].message or f"{verb!r} failed for {name}", **base)
    return json_response({**base, "command_id": responses[0].command_id, "ok": True})


# -- symbols, alerts, lifecycle --------------------------------------------------------------


def merge_symbols(rows: Sequence[Row], merged: messages.SymbolList | None) -> list[dict[str, Any]]:
    """exchange_symbols rows joined with the live merged list (whose tier is what is served)."""
    fields = ("symbol", "base", "quote", "tier", "volume_rank", "volume_24h", "is_active")
    by_symbol: dict[str, dict[str, Any]] = {}
    for row in rows:
        by_symbol[str(row["symbol"])] = {f: row.get(f) for f in fields} | {
            "in_symbol_list": False,
            "user_count": 0,
        }
    for entry in merged.symbols if merged else ():
        item = by_symbol.setdefault(entry.symbol, dict.fromkeys(fields) | {"symbol": entry.symbol})
        item.update(tier=entry.tier, in_symbol_list=True, user_count=len(entry.user_ids))
        if entry.volume_rank is not None:
            item["volume_rank"] = entry.volume_rank
    return sorted(by_symbol.values(), key=_symbol_order)


def _symbol_order(item: dict[str, Any]) -> tuple[int, int, str]:
    rank = item.get("volume_rank")
    return (int(item.get("tier") or 9), rank if isinstance(rank, int) else 1 << 30, item["symbol"])


@routes.get("/api/exchanges/{exchange}/symbols")
async def exchange_symbols(request: web.Request) -> web.Response:
    state = _state(request)
    row = await _exchange(request)
    exchange_id = int(row["id"])
    rows = await state.catalog.exchange_symbols(exchange_id)
    merged = await status.read_symbol_list(state.redis, state.keys, exchange_id)
    return json_response(
        {
            "exchange": _summary(row),
            "symbol_list_updated_at": merged.updated_at if merged else None,
            "symbols": merge_symbols(rows, merged),
        }
    )


@routes.get("/api/alerts")
async def recent_alerts(request: web.Request) -> web.Response:
    state = _state(request)
    limit = _limit(request)
    row = await _exchange_filter(request)
    exchange_id = int(row["id"]) if row else None
    names = {int(r["id"]): str(r["name"]) for r in await state.catalog.list_exchanges()}
    history = await state.catalog.recent_alerts(exchange_id, limit)
    streamed = await status.recent_stream_alerts(
        state.redis, state.keys, exchange_id=exchange_id, limit=limit
    )
    return json_response({"alerts": merge_alerts(history, streamed, names, limit)})


@routes.get("/api/lifecycle")
async def recent_lifecycle(request: web.Request) -> web.Response:
    state = _state(request)
    limit = _limit(request)
    row = await _exchange_filter(request)
    events = await status.recent_lifecycle(
        state.redis, state.keys, exchange_id=int(row["id"]) if row else None, limit=limit
    )
    return json_response({"events": events})
