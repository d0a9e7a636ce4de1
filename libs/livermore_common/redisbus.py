"""Redis connections for services: one configured asyncio client per process, from settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError

from livermore_common.config import CommonSettings
from livermore_common.keys import KeySpace
from livermore_common.rawredis import RawConnection, RawPool, borrowed
from livermore_common.rawredis import pack_bulk as pack_bulk  # re-exported
from livermore_common.rawredis import pack_command as pack_command  # re-exported


class LivermoreRedis(aioredis.Redis):
    """redis-py's asyncio client, plus a `RawPool` to the same server for the packed commands
    of the hot paths (`execute_packed`, `PackedSender`; see `rawredis`), closed with it."""

    raw: RawPool | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self.raw is not None:
            await self.raw.aclose()
        await super().aclose(close_connection_pool)


def raw_pool(redis: aioredis.Redis) -> RawPool | None:
    """The client's raw pool (None: a client not made by `create_redis`, or a URL that
    `rawredis` does not speak to directly; redis-py's own connections are used then)."""
    return getattr(redis, "raw", None)


def create_redis(url: str, *, client_name: str | None = None) -> aioredis.Redis:
    """A client returning bytes (messages are JSON bytes), with keepalive and connect timeouts.

    No socket timeout: blocking stream reads and pub/sub listeners wait longer than any sensible
    timeout. It must be given as None: redis-py 8 defaults to 5 s, and with a timeout it also
    runs every send in a task of its own under `asyncio.wait_for` (a few event-loop turns per
    command, ~0.2 ms each on the latency path here). Dead connections are found by TCP
    keepalive and the health check. redis-py's default retry (3 attempts with jittered backoff)
    covers blips.
    """
    client = LivermoreRedis.from_url(
        url,
        decode_responses=False,
        socket_timeout=None,
        socket_connect_timeout=5,
        socket_keepalive=True,
        health_check_interval=30,
        client_name=client_name,
    )
    assert isinstance(client, LivermoreRedis)
    client.raw = RawPool.for_redis_pool(client.connection_pool)
    return client


@asynccontextmanager
async def connect(url: str, *, client_name: str | None = None) -> AsyncIterator[aioredis.Redis]:
    """Open a client, check that the server answers, and close it on exit."""
    client = create_redis(url, client_name=client_name)
    try:
        await client.ping()
        yield client
    finally:
        await client.aclose()


def keyspace_for(settings: CommonSettings) -> KeySpace:
    """The key space of a deployment (its optional namespace prefix)."""
    return KeySpace(settings.namespace)


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that a library swallowed; long-running loops call it every round.

    On Python 3.11, `asyncio.wait_for` (used inside redis-py's connection setup) can swallow a
    `cancel()` that lands just as the inner operation completes (CPython gh-86296). The task then
    runs on with `cancelling() > 0`, so a loop that never checks would never stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def execute_packed(redis: aioredis.Redis, commands: Iterable[bytes]) -> list[Any]:
    """Send packed commands back to back on one connection, then read every reply.

    `commands` may be a generator: each command is sent as soon as it is packed, so Redis works
    on the first while the next is being built. Error replies are returned as `ResponseError`
    instances (like a pipeline with raise_on_error=False). On any failure or cancellation the
    connection is dropped, so unread replies can never reach its next user.
    """
    raw = raw_pool(redis)
    if raw is not None:
        async with borrowed(raw) as rc:
            sent = 0
            for command in commands:
                await rc.write(command)
                sent += 1
            return [await rc.read() for _ in range(sent)]
    pool = redis.connection_pool
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        sent = 0
        for command in commands:
            await conn.send_packed_command(command, check_health=sent == 0)
            sent += 1
        replies: list[Any] = []
        for _ in range(sent):
            try:
                replies.append(await conn.read_response())
            except ResponseError as exc:
                replies.append(exc)
        return replies
    except BaseException:
        await conn.disconnect()
        raise
    finally:
        await pool.release(conn)


class PackedSender:
    """Packed commands sent on one connection as soon as each is ready, replies read later.

    For a producer that computes its commands one after another: Redis runs each command while
    the next is being built, instead of waiting for the whole batch. Error replies are returned
    as `ResponseError` instances; on any failure or cancellation the connection is dropped (the
    commands already sent may or may not have run), so unread replies never reach its next user.
    Use as `async with PackedSender(redis) as s: await s.send(...); replies = await s.replies()`.
    """

    def __init__(self, redis: aioredis.Redis) -> None:
        self._pool = redis.connection_pool
        self._raw = raw_pool(redis)
        self._rc: RawConnection | None = None
        self._conn: Any = None
        self._sent = 0

    async def __aenter__(self) -> PackedSender:
        if self._raw is not None:
            self._rc = await self._raw.acquire()
        else:
            self._conn = await self._pool.get_connection()  # type: ignore[no-untyped-call]
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._rc is not None:
            rc, self._rc = self._rc, None
            assert self._raw is not None
            self._raw.release(rc, reusable=exc_type is None and not self._sent)
            return
        conn, self._conn = self._conn, None
        try:
            if exc_type is not None or self._sent:  # failed, or replies left unread
                await conn.disconnect()
        finally:
            await self._pool.release(conn)

    async def send(self, command: bytes) -> None:
        if self._rc is not None:
            await self._rc.write(command)
        else:
            await self._conn.send_packed_command(command, check_health=self._sent == 0)
        self._sent += 1

    @property
    def unread(self) -> int:
        """Commands sent whose replies are not read yet."""
        return self._sent

    async def reply(self) -> Any:
        """The reply of the oldest command not read yet (an error reply as an instance)."""
        if self._rc is not None:
            out = await self._rc.read()
        else:
            try:
                out = await self._conn.read_response()
            except ResponseError as exc:
                out = exc
        self._sent -= 1
        return out

    async def replies(self) -> list[Any]:
        """The reply of every command sent so far, in order."""
        return [await self.reply() for _ in range(self._sent)]


class ScriptRunner:
    """Runs Lua scripts as EVALSHA calls sent back to back on one connection, loading a script
    when Redis lacks it (a call refused with NOSCRIPT did not run, so rerunning it is safe)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._shas: dict[str, str] = {}

    async def sha(self, script: str) -> str:
        """The script's SHA1, loading it into Redis the first time."""
        return self._shas.get(script) or await self._load(script)

    def known_sha(self, script: str) -> str | None:
        """The script's SHA1 if it was loaded already (no I/O)."""
        return self._shas.get(script)

    async def run_packed(self, script: str, commands: list[bytes]) -> list[Any]:
        """Replies to EVALSHA `commands` packed by the caller with `sha(script)`, rerunning the
        ones Redis refused with NOSCRIPT after loading the script; errors are raised."""
        replies = await execute_packed(self._redis, commands)
        return await self.settle(script, commands, replies)

    async def settle(self, script: str, commands: list[bytes], replies: list[Any]) -> list[Any]:
        """Given the replies to EVALSHA `commands` (sent by the caller, e.g. with a
        `PackedSender`), rerun those refused with NOSCRIPT once the script is loaded again (the
        SHA1 does not change); raise the first error reply."""
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if missing:
            await self._load(script)
            again = await execute_packed(self._redis, [commands[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def run(self, script: str, calls: list[list[Any]]) -> list[Any]:
        """One reply per call (each call is `numkeys, keys..., args...`); errors are raised."""
        if not calls:
            return []
        sha = await self.sha(script)
        return await self.run_packed(script, [pack_command("EVALSHA", sha, *c) for c in calls])

    async def _load(self, script: str) -> str:
        raw = await self._redis.script_load(script)
        sha = self._shas[script] = raw.decode() if isinstance(raw, bytes) else str(raw)
        return sha


# KEYS: hashes holding a `ts` and a `state` field. Returns ts, state (false when absent), flattened.
_LOAD_STATES = """
local out = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, 'ts', 'state')
  out[2 * i - 1], out[2 * i] = v[1], v[2]
end
return out
"""


async def load_states(
    scripts: ScriptRunner, state_keys: Sequence[str], *, chunk: int = 250
) -> list[tuple[str, bytes | None]]:
    """(stored ts or '', state bytes or None) of each per-series state hash, in one round trip
    (one script call per `chunk` keys). Used by the compare-and-set state stores."""
    calls = [
        [len(c), *c] for c in (state_keys[i : i + chunk] for i in range(0, len(state_keys), chunk))
    ]
    out: list[tuple[str, bytes | None]] = []
    for reply in await scripts.run(_LOAD_STATES, calls):
        for j in range(0, len(reply), 2):
            ts, state = reply[j], reply[j + 1]
            out.append((ts.decode() if ts else "", state or None))
    return out
