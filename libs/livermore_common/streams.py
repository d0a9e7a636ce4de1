"""Redis stream plumbing: XADD, consumer groups, batched consumption, XAUTOCLAIM, dead letters.

Every entry carries its payload in one field, `data` (JSON bytes of a `messages` struct). A
`StreamConsumer` reads a consumer group in batches and acks after its handler succeeds; entries
that keep failing, or that cannot be decoded, go to a dead-letter stream with the reason. Handlers
must be idempotent: delivery is at least once (a crashed consumer's entries are reclaimed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NamedTuple

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from redis.typing import EncodableT, FieldT

from livermore_common.errors import PermanentError
from livermore_common.logs import get_logger
from livermore_common.redisbus import execute_packed, pack_command, raise_if_cancelled

DATA_FIELD = "data"
# Approximate (~) trim bound of the durable streams: hours of normal traffic, about 30 s of the
# benchmark's peak rate; a consumer group lagging further than that loses the oldest entries.
DEFAULT_MAXLEN = 1_000_000
DEAD_LETTER_MAXLEN = 100_000

# Failures that no retry can fix: the entry goes to the dead-letter stream at once.
PERMANENT_FAILURES: tuple[type[BaseException], ...] = (
    msgspec.DecodeError,
    UnicodeDecodeError,
    PermanentError,
)

_log = get_logger(__name__)


class StreamEntry(NamedTuple):
    """One stream entry handed to a handler; `deliveries` counts this delivery (1 = first)."""

    id: str
    data: bytes
    deliveries: int


Handler = Callable[[Sequence[StreamEntry]], Awaitable[None]]


@dataclass(slots=True)
class ConsumerStats:
    """Counters of one consumer (monotonic, per process)."""

    processed: int = 0  # entries acked after the handler succeeded
    retried: int = 0  # entries handed to the handler again (isolation after a batch failure)
    failed: int = 0  # entries left pending after a failure, for redelivery
    dead_lettered: int = 0
    reclaimed: int = 0  # entries taken over from idle consumers with XAUTOCLAIM
    deleted: int = 0  # pending entries whose data had already been trimmed away


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


async def xadd(
    redis: aioredis.Redis, stream: str, data: bytes, *, maxlen: int | None = DEFAULT_MAXLEN
) -> str:
    """Append `data` under the field `data`, trimming approximately to `maxlen`; returns the id."""
    entry_id = await redis.xadd(stream, {DATA_FIELD: data}, maxlen=maxlen, approximate=True)
    return _text(entry_id)


async def ensure_group(redis: aioredis.Redis, stream: str, group: str, start_id: str = "0") -> None:
    """Create the consumer group (and the stream); an existing group (BUSYGROUP) is fine."""
    try:
        await redis.xgroup_create(stream, group, id=start_id, mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _stream_entries(reply: Any) -> list[tuple[Any, Any]]:
    """Entries of a single-stream XREADGROUP reply, in any of its shapes: the raw RESP2 (list of
    [stream, entries]) and RESP3 (map stream -> entries) replies, and redis-py's parsed ones."""
    if not reply:
        return []
    if isinstance(reply, dict):
        entries: list[tuple[Any, Any]] = []
        for value in reply.values():
            first = value[0] if value else None
            if isinstance(first, list) and first and isinstance(first[0], list | tuple):
                value = first  # redis-py's RESP3 shape wraps the entry list in one more list
            entries.extend(value)
        return entries
    return [pair for _, stream_entries in reply for pair in stream_entries]


class StreamConsumer:
    """Reads one stream as a member of a consumer group, in batches, until told to stop."""

    def __init__(
        self,
        redis: aioredis.Redis,
        stream: str,
        group: str,
        consumer_name: str,
        handler: Handler,
        *,
        batch_size: int = 500,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
        max_deliveries: int = 5,
        dead_letter_stream: str | None = None,
    ) -> None:
        if batch_size < 1 or max_deliveries < 1 or claim_idle_ms < 1 or block_ms < 0:
            raise ValueError("batch_size, max_deliveries and claim_idle_ms must be positive")
        self._redis = redis
        self.stream = stream
        self.group = group
        self.consumer_name = consumer_name
        self._handler = handler
        self._batch_size = batch_size
        self._block_ms = block_ms
        self._claim_idle_ms = claim_idle_ms
        self._max_deliveries = max_deliveries
        # Same rule as KeySpace.dead_letter_stream, which keeps the stream's namespace.
        self.dead_letter_stream = dead_letter_stream or f"{stream}:dead"
        # Scan for idle entries twice per idle period, but at least every 5 s.
        self._reclaim_every = min(claim_idle_ms / 2000, 5.0)
        self._next_reclaim = 0.0
        self._cursor = "0-0"
        self._ready = False
        # The XREADGROUP command packed once per BLOCK value (None = no BLOCK).
        self._read_commands: dict[int | None, bytes] = {}
        self.stats = ConsumerStats()
        self._log = _log.bind(stream=stream, group=group, consumer=consumer_name)

    async def __aenter__(self) -> StreamConsumer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Create the group if needed; idempotent."""
        if not self._ready:
            await ensure_group(self._redis, self.stream, self.group)
            self._ready = True

    async def aclose(self) -> None:
        """Nothing is held: pending entries stay in the group for this name or others to take."""
        self._ready = False

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; the batch in hand is finished and acked before returning."""
        await self.start()
        while not stop.is_set():
            raise_if_cancelled()
            await self.step()

    async def step(self, *, block_ms: int | None = None) -> int:
        """One round: a reclaim page when due, then one read; returns entries handed over."""
        await self.start()
        handled = 0
        scanning = False
        if time.monotonic() >= self._next_reclaim:
            handled, scanning = await self._reclaim_page()
        # While a reclaim scan is in progress, do not block on the read.
        wanted = self._block_ms if block_ms is None else block_ms
        block = None if scanning or wanted <= 0 else wanted  # BLOCK 0 would wait forever
        # Sent pre-packed and its reply left raw (no redis-py parsing into dicts per entry):
        # this read is on every close's latency path and runs once per batch.
        (reply,) = await execute_packed(self._redis, [self._read_command(block)])
        if isinstance(reply, Exception):
            raise reply
        pairs = _stream_entries(reply)
        if pairs:
            handled += await self._process(pairs, deliveries=None)
        return handled

    def _read_command(self, block: int | None) -> bytes:
        command = self._read_commands.get(block)
        if command is None:
            args: list[str | int] = ["XREADGROUP", "GROUP", self.group, self.consumer_name]
            args += ["COUNT", self._batch_size]
            args += [] if block is None else ["BLOCK", block]
            command = pack_command(*args, "STREAMS", self.stream, ">")
            if len(self._read_commands) < 16:
                self._read_commands[block] = command
        return command

    async def _reclaim_page(self) -> tuple[int, bool]:
        """Claim one page of entries idle too long; returns (handled, scan still in progress)."""
        reply = await self._redis.xautoclaim(
            self.stream,
            self.group,
            self.consumer_name,
            min_idle_time=self._claim_idle_ms,
            start_id=self._cursor,
            count=self._batch_size,
        )
        self._cursor = _text(reply[0])
        pairs = [(i, f) for i, f in reply[1] if i is not None and f is not None]
        gone = [i for i, f in reply[1] if i is not None and f is None]
        gone += list(reply[2]) if len(reply) > 2 else []
        if gone:
            await self._forget_deleted(gone)
        handled = 0
        if pairs:
            self.stats.reclaimed += len(pairs)
            counts = await self._delivery_counts([i for i, _ in pairs])
            handled = await self._process(pairs, deliveries=counts)
        done = self._cursor == "0-0"
        if done:
            self._next_reclaim = time.monotonic() + self._reclaim_every
        return handled, not done

    async def _delivery_counts(self, ids: list[Any]) -> dict[str, int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.xpending_range(self.stream, self.group, entry_id, entry_id, 1)
            replies = await pipe.execute()
        counts: dict[str, int] = {}
        for entry_id, rows in zip(ids, replies, strict=True):
            counts[_text(entry_id)] = int(rows[0]["times_delivered"]) if rows else 1
        return counts

    async def _forget_deleted(self, ids: list[Any]) -> None:
        # Redis 7 drops these from the PEL itself; the XACK covers older servers.
        await self._redis.xack(self.stream, self.group, *ids)
        self.stats.deleted += len(ids)
        self._log.warning("stream entries trimmed before they were processed", count=len(ids))

    async def _process(
        self, pairs: list[tuple[Any, Any]], deliveries: dict[str, int] | None
    ) -> int:
        entries: list[StreamEntry] = []
        rejects: list[tuple[StreamEntry, str]] = []
        for raw_id, fields in pairs:
            entry_id = _text(raw_id)
            count = 1 if deliveries is None else deliveries.get(entry_id, 1)
            if isinstance(fields, list):  # a raw reply: [field, value, ...]
                if len(fields) == 2 and fields[0] == b"data":
                    data = fields[1]
                else:
                    fields = dict(zip(fields[::2], fields[1::2], strict=False))
                    data = fields.get(b"data", fields.get(DATA_FIELD))
            else:
                data = fields.get(b"data", fields.get(DATA_FIELD))
            if data is None:
                raw = msgspec.json.encode({_text(k): _text(v) for k, v in fields.items()})
                rejects.append((StreamEntry(entry_id, raw, count), "undecodable: no 'data' field"))
            elif count > self._max_deliveries:
                reason = f"delivered {count} times (max {self._max_deliveries})"
                rejects.append((StreamEntry(entry_id, _as_bytes(data), count), reason))
            else:
                entries.append(StreamEntry(entry_id, _as_bytes(data), count))
        if rejects:
            await self._settle([], rejects)
        if entries:
            await self._handle(entries)
        return len(entries)

    async def _handle(self, entries: list[StreamEntry]) -> None:
        try:
            await self._handler(entries)
        except Exception as exc:
            self._log.warning("stream handler failed", batch=len(entries), exc_info=exc)
            if len(entries) == 1:
                await self._settle_failure(entries[0], exc)
            else:
                await self._isolate(entries)
            return
        await self._ack([e.id for e in entries])
        self.stats.processed += len(entries)

    async def _ack(self, ids: list[str]) -> None:
        # Packed here: redis-py's packer costs ~0.5 us per id, and a batch acks hundreds.
        (reply,) = await execute_packed(
            self._redis, [pack_command("XACK", self.stream, self.group, *ids)]
        )
        if isinstance(reply, Exception):
            raise reply

    async def _isolate(self, entries: list[StreamEntry]) -> None:
        """Run the entries one at a time so that one poison entry cannot hold back the rest."""
        done: list[str] = []
        rejects: list[tuple[StreamEntry, str]] = []
        for entry in entries:
            self.stats.retried += 1
            try:
                await self._handler([entry])
            except Exception as exc:
                reason = self._verdict(entry, exc)
                if reason is not None:
                    rejects.append((entry, reason))
            else:
                done.append(entry.id)
        await self._settle(done, rejects)

    async def _settle_failure(self, entry: StreamEntry, exc: Exception) -> None:
        reason = self._verdict(entry, exc)
        if reason is not None:
            await self._settle([], [(entry, reason)])

    def _verdict(self, entry: StreamEntry, exc: Exception) -> str | None:
        """The dead-letter reason for a failed entry, or None to leave it pending for redelivery."""
        if isinstance(exc, PERMANENT_FAILURES):
            return f"{type(exc).__name__}: {exc}"
        if entry.deliveries >= self._max_deliveries:
            return f"failed {entry.deliveries} times: {exc!r}"
        self.stats.failed += 1  # XAUTOCLAIM hands it out again once it has been idle long enough
        return None

    async def _settle(self, done: list[str], rejects: list[tuple[StreamEntry, str]]) -> None:
        """Ack `done`, and move `rejects` to the dead-letter stream (atomically with their ack)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            for entry, reason in rejects:
                record: dict[FieldT, EncodableT] = {
                    DATA_FIELD: entry.data,
                    "reason": reason[:500],
                    "stream": self.stream,
                    "id": entry.id,
                    "group": self.group,
                    "consumer": self.consumer_name,
                    "deliveries": entry.deliveries,
                }
                pipe.xadd(self.dead_letter_stream, record, maxlen=DEAD_LETTER_MAXLEN)
            ids = done + [entry.id for entry, _ in rejects]
            if ids:
                pipe.xack(self.stream, self.group, *ids)
                await pipe.execute()
        self.stats.processed += len(done)
        self.stats.dead_lettered += len(rejects)
        for entry, reason in rejects:
            self._log.error("stream entry dead-lettered", entry_id=entry.id, reason=reason)
