"""Redis connections spoken to directly, for the commands on the close -> alert path.

redis-py's connection checkout and release run a few hundred lines of Python (a lock, health and
dirty-connection checks, observability hooks, event dispatch). That costs ~15 us when the process
is busy, but on a VM a process idle for a few tens of milliseconds pays for every bit of memory
it touches next: the same checkout then takes 0.6-2.5 ms, once per hop of a closed candle
(measured in bench/README.md, "where the time goes"). A `RawConnection` is an asyncio protocol
that writes packed commands to its transport and feeds what arrives to hiredis's reader, nothing
else; a `RawPool` keeps idle ones. Clients made by `redisbus.create_redis` carry one
(`LivermoreRedis.raw`), and `redisbus.execute_packed` and `PackedSender` use it.

Only plain TCP and Unix-socket URLs are spoken to directly (password, username, database and
client name supported); anything else (TLS, credential providers) has no `RawPool` and goes
through redis-py as before.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
from collections.abc import Iterable
from typing import Any

import hiredis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

# Idle connections a pool keeps; more are opened when more are in use at once, and closed when
# they come back to a full pool.
MAX_IDLE = 8
_CONNECT_TIMEOUT_S = 5.0


def _reply_error(reply: Any) -> Any:
    """An error reply as redis-py raises it (NOSCRIPT as `NoScriptError`, the scripts' reload
    signal); any other reply unchanged."""
    if isinstance(reply, ResponseError):
        message = str(reply)
        if message.startswith("NOSCRIPT"):
            return NoScriptError(message)
    return reply


def pack_bulk(args: Iterable[bytes | str | int]) -> bytes:
    """Arguments as RESP bulk strings, without the array header (see `pack_command`)."""
    out: list[bytes] = []
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


def pack_command(*args: bytes | str | int) -> bytes:
    """One command in the Redis protocol (RESP); several times faster than redis-py's packer,
    which matters on hot write paths that send thousands of arguments per call."""
    return b"*%d\r\n%b" % (len(args), pack_bulk(args))


class RawConnection(asyncio.Protocol):
    """One connection: `write` packed commands, `read` their replies in order.

    Error replies are returned as `ResponseError` (or `NoScriptError`) instances, not raised. A
    connection that failed or was cancelled mid-command must not be reused (`RawPool.release`
    with `reusable=False`): its unread replies would reach the next user.
    """

    def __init__(self) -> None:
        self._parser = hiredis.Reader(replyError=ResponseError)
        self._transport: asyncio.Transport | None = None
        self._replies: collections.deque[Any] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._paused = False
        self._lost: BaseException | None = None
        self.expected = 0  # replies written for and not read yet

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        parser.feed(data)
        reply = parser.gets()
        while reply is not False:
            self._replies.append(reply)
            reply = parser.gets()
        waiter = self._waiter
        if waiter is not None and self._replies and not waiter.done():
            waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = RedisConnectionError(f"Redis connection lost: {exc or 'closed by the server'}")
        for fut in (self._waiter, self._drained):
            if fut is not None and not fut.done():
                fut.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # use
    @property
    def usable(self) -> bool:
        transport = self._transport
        return self._lost is None and transport is not None and not transport.is_closing()

    async def write(self, command: bytes, replies: int = 1) -> None:
        """Send `command` (one or more packed commands expecting `replies` replies)."""
        if self._lost is not None:
            raise self._lost
        assert self._transport is not None
        self._transport.write(command)
        self.expected += replies
        if self._paused:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained
            if self._lost is not None:
                raise self._lost

    async def read(self) -> Any:
        """The next reply."""
        replies = self._replies
        while not replies:
            if self._lost is not None:
                raise self._lost
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self.expected -= 1
        return _reply_error(replies.popleft())

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class RawPool:
    """Idle `RawConnection`s to one server, opened with the parameters of a redis-py pool."""

    def __init__(
        self,
        *,
        host: str = "localhost",
        port: int = 6379,
        path: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        client_name: str | None = None,
        keepalive: bool = True,
    ) -> None:
        self._host, self._port, self._path = host, port, path
        self._handshake: list[bytes] = []
        if password:
            auth = ("AUTH", username, password) if username else ("AUTH", password)
            self._handshake.append(pack_command(*auth))
        if db:
            self._handshake.append(pack_command("SELECT", db))
        if client_name:
            self._handshake.append(pack_command("CLIENT", "SETNAME", client_name))
        self._keepalive = keepalive
        self._idle: list[RawConnection] = []
        self._open: set[RawConnection] = set()
        self._closed = False

    @classmethod
    def for_redis_pool(cls, pool: Any) -> RawPool | None:
        """A pool speaking to the server of redis-py `pool`, or None when its connections need
        more than this module does (TLS, credential providers, custom classes)."""
        kwargs = dict(pool.connection_kwargs)
        if kwargs.get("credential_provider") is not None:
            return None
        db = int(kwargs.get("db") or 0)
        username, password = kwargs.get("username"), kwargs.get("password")
        name = kwargs.get("client_name")
        if pool.connection_class is Connection:
            return cls(
                host=str(kwargs.get("host", "localhost")),
                port=int(kwargs.get("port", 6379)),
                keepalive=bool(kwargs.get("socket_keepalive", True)),
                db=db,
                username=username,
                password=password,
                client_name=name,
            )
        if pool.connection_class is UnixDomainSocketConnection:
            return cls(
                path=str(kwargs["path"]),
                db=db,
                username=username,
                password=password,
                client_name=name,
            )
        return None

    async def acquire(self) -> RawConnection:
        if self._closed:
            raise RedisConnectionError("the connection pool is closed")
        while self._idle:
            conn = self._idle.pop()
            if conn.usable:
                return conn
            self._open.discard(conn)
        return await self._connect()

    def release(self, conn: RawConnection, *, reusable: bool = True) -> None:
        """Give `conn` back: kept when it is healthy and has no reply left unread."""
        if (
            reusable
            and not self._closed
            and conn.usable
            and conn.expected == 0
            and len(self._idle) < MAX_IDLE
        ):
            self._idle.append(conn)
        else:
            conn.close()
            self._open.discard(conn)

    async def aclose(self) -> None:
        self._closed = True
        for conn in self._open:
            conn.close()
        self._open.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports finish closing

    async def _connect(self) -> RawConnection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(_CONNECT_TIMEOUT_S):
            if self._path is not None:
                _, conn = await loop.create_unix_connection(RawConnection, self._path)
            else:
                _, conn = await loop.create_connection(RawConnection, self._host, self._port)
        self._open.add(conn)
        try:
            transport = conn._transport
            assert transport is not None
            sock = transport.get_extra_info("socket")
            if sock is not None and self._path is None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._keepalive:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if self._handshake:
                await conn.write(b"".join(self._handshake), len(self._handshake))
                for _ in self._handshake:
                    reply = await conn.read()
                    if isinstance(reply, Exception):
                        raise RedisConnectionError(f"Redis refused the connection set-up: {reply}")
        except BaseException:
            conn.close()
            self._open.discard(conn)
            raise
        return conn


@contextlib.asynccontextmanager
async def borrowed(pool: RawPool) -> Any:
    """A connection for one exchange of commands, dropped instead of reused on any failure or
    cancellation (its unread replies must never reach the next user)."""
    conn = await pool.acquire()
    ok = False
    try:
        yield conn
        ok = True
    finally:
        pool.release(conn, reusable=ok)
