"""A tiny scriptable venue for adapter I/O tests: aiohttp REST routes and WebSocket sessions.

Each test adds the routes it needs; WebSocket sessions are recorded (path, query, messages the
client sent) and can be driven from the test (send frames, ping, close).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(eq=False)
class WsSession:
    """One client connection as the venue sees it."""

    ws: web.WebSocketResponse
    path: str
    query: dict[str, str]
    received: list[Any] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)
    pongs: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    on_message: Callable[[WsSession, Any], Awaitable[None]] | None = None

    async def send(self, frame: Any) -> None:
        await self.ws.send_str(frame if isinstance(frame, str) else json.dumps(frame))

    async def send_bytes_text(self, data: bytes) -> None:
        await self.ws.send_str(data.decode())

    async def ping(self) -> None:
        await self.ws.ping(b"venue-ping")

    async def close(self, code: int = 1000) -> None:
        await self.ws.close(code=code)


class Venue:
    """Serve on 127.0.0.1:<free port>; `http_url` / `ws_url` are the base URLs for a row."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.sessions: list[WsSession] = []
        self.requests: list[web.Request] = []
        self._ws_hook: Callable[[WsSession, Any], Awaitable[None]] | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    def get(self, path: str, handler: Handler) -> None:
        async def recorded(request: web.Request) -> web.StreamResponse:
            self.requests.append(request)
            return await handler(request)

        self.app.router.add_get(path, recorded)

    def websocket(
        self, path: str, on_message: Callable[[WsSession, Any], Awaitable[None]] | None = None
    ) -> None:
        self._ws_hook = on_message
        self.app.router.add_get(path, self._ws_handler)

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        # autoping off: the test sees the client's pongs (proof that pings are answered).
        ws = web.WebSocketResponse(autoping=False, compress=False)
        await ws.prepare(request)
        session = WsSession(ws, request.path, dict(request.query), on_message=self._ws_hook)
        self.sessions.append(session)
        loop = asyncio.get_running_loop()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.PONG:
                    session.pongs += 1
                elif msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.CLOSE:
                    await ws.close()
                elif msg.type == WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    session.received.append(data)
                    session.received_at.append(loop.time())
                    if session.on_message is not None:
                        await session.on_message(session, data)
        finally:
            session.closed.set()
        return ws

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> Venue:
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[union-attr]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def aclose(self) -> None:
        for session in self.sessions:
            with contextlib.suppress(Exception):
                await session.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()


@contextlib.asynccontextmanager
async def running(venue: Venue) -> AsyncIterator[Venue]:
    await venue.start()
    try:
        yield venue
    finally:
        await venue.aclose()


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=body if isinstance(body, str) else json.dumps(body),
        status=status,
        headers=headers,
        content_type="application/json",
    )
