"""The alert history writer: the durable alert stream into Postgres `alert_history`, in batches.

The evaluator publishes each alert exactly once, atomically on its exchange's channel and on the
durable alert stream (`stream:alerts`). This writer reads that stream as its own consumer group
(`alert-history`), off the evaluator's latency path, and inserts what it reads in one statement
per batch, idempotent by the alert's deterministic id (`ON CONFLICT (alert_id) DO NOTHING`). It
acks only after the insert committed, so:

- a crash after the alert was published but before it was inserted leaves the entry unread or
  pending in the group: the next writer (this process restarted, or another one, via XAUTOCLAIM)
  inserts it;
- a crash after the insert but before the ack hands the entry out again: the insert ignores it.

So every published alert reaches `alert_history` once, a little after it was published (a batch
later, and `LINGER_S` after it was read: the insert stays off the instant of publication). While
Postgres is unreachable the writer retries the same batch with backoff instead of failing it (a
failed entry would count a delivery, and a few failures dead-letter it): the entries wait in the
group and are stored once Postgres is back. An alert whose exchange is not
in `exchanges` cannot be stored: the consumer isolates it and moves it to the dead-letter stream
instead of holding back the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import asyncpg
import msgspec

from livermore_common import messages
from livermore_common.db import Database
from livermore_common.errors import UnknownExchangeError
from livermore_common.logs import get_logger
from livermore_common.messages import Alert
from livermore_common.streams import StreamEntry

HISTORY_GROUP = "alert-history"

# One statement per batch: the columns travel as arrays (one round trip, one plan).
_INSERT = (
    "INSERT INTO alert_history (alert_id, exchange_id, symbol, timeframe, alert_type, "
    "trigger_label, trigger_value, price, triggered_at, candle_timestamp, details) "
    "SELECT t.alert_id, t.exchange_id, t.symbol, t.timeframe, t.alert_type, t.trigger_label, "
    "t.trigger_value, t.price, t.triggered_at, t.candle_timestamp, t.details::jsonb "
    "FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], "
    "$7::float8[], $8::float8[], $9::timestamptz[], $10::bigint[], $11::text[]) "
    "AS t(alert_id, exchange_id, symbol, timeframe, alert_type, trigger_label, trigger_value, "
    "price, triggered_at, candle_timestamp, details) "
    "ON CONFLICT (alert_id) DO NOTHING"
)

_json = msgspec.json.Encoder()

# Postgres unreachable, restarting or refusing connections: worth waiting out, not a bad entry.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)
_RETRY_FIRST_S = 0.2
_RETRY_MAX_S = 10.0
# The insert waits this long after its alerts were read: they were published a moment ago, and
# subscribers waking for them should not have to share the machine's CPUs with Postgres and this
# insert at that instant (measured: ~0.3-0.4 ms of close -> alert p50 on a 2-vCPU machine).
LINGER_S = 0.01


def _details(alert: Alert) -> str:
    return _json.encode(
        {
            "signal": alert.signal,
            "histogram": alert.histogram,
            "stage": alert.stage,
            "source_exchange_name": alert.source_exchange_name,
            "context": alert.context,
        }
    ).decode()


async def insert_alerts(db: Database, alerts: Iterable[Alert]) -> int:
    """Insert the alerts not stored yet (by id), in one statement; returns how many were new."""
    unique = list({a.id: a for a in alerts}.values())
    if not unique:
        return 0
    try:
        status = await db.pool.execute(
            _INSERT,
            [a.id for a in unique],
            [a.source_exchange_id for a in unique],
            [a.symbol for a in unique],
            [a.timeframe for a in unique],
            [a.alert_type for a in unique],
            [a.trigger_label for a in unique],
            [a.trigger_value for a in unique],
            [a.price for a in unique],
            [datetime.fromtimestamp(a.triggered_at / 1000, UTC) for a in unique],
            [a.candle_timestamp for a in unique],
            [_details(a) for a in unique],
        )
    except asyncpg.ForeignKeyViolationError:
        ids = sorted({a.source_exchange_id for a in unique})
        raise UnknownExchangeError(f"alert for an exchange id not in exchanges: {ids}") from None
    return int(status.rsplit(" ", 1)[-1])


class HistoryWriter:
    """Stream handler of the `alert-history` group: a batch of alert entries into alert_history.

    While Postgres is unreachable it retries the batch (backoff up to 10 s) until it succeeds or
    `stop` is set; then the failure is raised and the entries stay pending for redelivery."""

    def __init__(
        self, db: Database, *, stop: asyncio.Event | None = None, linger_s: float = LINGER_S
    ) -> None:
        self._db = db
        self._stop = stop or asyncio.Event()
        self._linger_s = linger_s
        self.inserted = 0  # rows new to the table
        self.seen = 0  # alerts handled (including ones already stored: replays)
        self.retries = 0  # inserts retried because Postgres was unreachable
        self._log = get_logger("alerts.history")

    async def handle(self, entries: Sequence[StreamEntry]) -> None:
        if self._linger_s > 0 and not self._stop.is_set():
            await asyncio.sleep(self._linger_s)
        alerts = [messages.decode(e.data, Alert) for e in entries]
        delay = _RETRY_FIRST_S
        while True:
            try:
                self.inserted += await insert_alerts(self._db, alerts)
                break
            except _UNREACHABLE as exc:
                if self._stop.is_set():
                    raise
                self.retries += 1
                self._log.warning(
                    "alert_history unreachable, retrying",
                    error=type(exc).__name__,
                    batch=len(alerts),
                    retry_in_s=delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                delay = min(delay * 2, _RETRY_MAX_S)
        self.seen += len(alerts)
