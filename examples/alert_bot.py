#!/usr/bin/env python3
"""A Livermore alert bot in plain redis-py: catches up, follows live, acts on each alert once.

Copy this file and put your logic in `on_alert`. It needs only redis-py (`pip install redis`);
nothing from Livermore is imported: the Redis names are written out below and match
`libs/livermore_common/keys.py` (see docs/integration-guide.md).

    python examples/alert_bot.py --exchange 1 --exchange 2      # Coinbase and Binance alerts
    LIVERMORE_REDIS_URL=redis://redis.example:6379/0 ALERT_BOT_EXCHANGES=2 python alert_bot.py

How it misses nothing and repeats nothing:
1. It subscribes to `channel:alerts:{exchange_id}` of each exchange first, so every alert
   published from then on reaches it.
2. It reads the durable stream `stream:alerts` from the last entry id it saved (its state file)
   and handles what it missed while it was down. On a first run it starts from now (or from the
   beginning of the stream with --from-start).
3. It then handles live messages as they arrive, and every few seconds reads the stream again
   from the saved id: that moves the checkpoint forward and picks up any alert pub/sub dropped
   (pub/sub is at-most-once; the stream is durable).
4. An alert seen twice (live and in the stream, or replayed) has the same `id` and is skipped.
   Recently handled ids are saved with the checkpoint, so a restart repeats nothing either.

Settings (a flag wins over its variable):
  --redis-url        LIVERMORE_REDIS_URL       redis://127.0.0.1:6379/0
  --namespace        LIVERMORE_NAMESPACE       "" (the prefix of a namespaced deployment)
  --exchange ID      ALERT_BOT_EXCHANGES       1 (ids from the `exchanges` table: 1 coinbase,
                                                 2 binance, 3 binance_us); repeat or a,b
  --state FILE       ALERT_BOT_STATE           alert_bot_state.json
  --from-start       ALERT_BOT_FROM_START=1    with no state yet, replay the whole stream
  --json             ALERT_BOT_JSON=1          print each alert's JSON instead of a summary line
  --max-alerts N     ALERT_BOT_MAX_ALERTS      exit after handling N alerts (demos, tests)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

RECENT_IDS_KEPT = 5000  # enough to cover the overlap between a checkpoint and live delivery
RECONCILE_EVERY_S = 5.0
STREAM_PAGE = 500


# -- Redis names: the same as livermore_common/keys.py (KeySpace.alerts_channel, .alert_stream) --
def alerts_channel(namespace: str, exchange_id: int) -> str:
    return f"{namespace}channel:alerts:{int(exchange_id)}"


def alert_stream(namespace: str) -> str:
    return f"{namespace}stream:alerts"


# -- what the bot does with an alert: replace this ----------------------------------------------
def on_alert(alert: dict[str, Any], *, as_json: bool) -> None:
    """Called once per alert id. `alert` is the payload of docs/payloads.md."""
    if as_json:
        print(json.dumps(alert, separators=(",", ":")), flush=True)
        return
    when = dt.datetime.fromtimestamp(alert["triggered_at"] / 1000, tz=dt.timezone.utc)  # noqa: UP017
    print(
        f"{when:%Y-%m-%d %H:%M:%S}Z {alert['source_exchange_name']} {alert['symbol']} "
        f"{alert['timeframe']} {alert['trigger_label']} macd_v={alert['trigger_value']:.2f} "
        f"price={alert['price']} stage={alert['stage']} id={alert['id']}",
        flush=True,
    )


# -- settings ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    redis_url: str
    namespace: str
    exchanges: tuple[int, ...]
    state_file: Path
    from_start: bool
    as_json: bool
    max_alerts: int | None


def _flag(env: dict[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def parse_settings(argv: list[str], env: dict[str, str]) -> Settings:
    p = argparse.ArgumentParser(description="Print Livermore alerts, each once.")
    p.add_argument(
        "--redis-url", default=env.get("LIVERMORE_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    p.add_argument("--namespace", default=env.get("LIVERMORE_NAMESPACE", ""))
    p.add_argument("--exchange", action="append", metavar="ID", help="exchange id (repeatable)")
    p.add_argument("--state", default=env.get("ALERT_BOT_STATE", "alert_bot_state.json"))
    p.add_argument("--from-start", action="store_true", default=_flag(env, "ALERT_BOT_FROM_START"))
    p.add_argument("--json", action="store_true", default=_flag(env, "ALERT_BOT_JSON"))
    p.add_argument("--max-alerts", type=int, default=env.get("ALERT_BOT_MAX_ALERTS") or None)
    args = p.parse_args(argv)
    raw = args.exchange or [env.get("ALERT_BOT_EXCHANGES", "1")]
    parts = [part for item in raw for part in item.split(",") if part.strip()]
    exchanges = tuple(sorted({int(part) for part in parts}))
    if not exchanges:
        p.error("name at least one exchange id")
    return Settings(
        redis_url=args.redis_url,
        namespace=args.namespace,
        exchanges=exchanges,
        state_file=Path(args.state),
        from_start=args.from_start,
        as_json=args.json,
        max_alerts=args.max_alerts,
    )


# -- the checkpoint: last stream id read, and the alert ids handled recently --------------------
class State:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.last_id: str | None = None
        self.recent: OrderedDict[str, None] = OrderedDict()

    def load(self) -> State:
        if self.path.exists():
            data = json.loads(self.path.read_text())
            self.last_id = data.get("last_id")
            self.recent = OrderedDict.fromkeys(data.get("recent_ids", []))
        return self

    def save(self) -> None:
        # Write then rename: a crash mid-write never leaves a torn state file.
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = {"last_id": self.last_id, "recent_ids": list(self.recent)}
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.path)

    def first_time(self, alert_id: str) -> bool:
        if alert_id in self.recent:
            return False
        self.recent[alert_id] = None
        while len(self.recent) > RECENT_IDS_KEPT:
            self.recent.popitem(last=False)
        return True


# -- the bot -----------------------------------------------------------------------------------
class AlertBot:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = State(settings.state_file).load()
        self.handled = 0
        self.stopping = False
        self._stream = alert_stream(settings.namespace)
        self._channels = [alerts_channel(settings.namespace, ex) for ex in settings.exchanges]

    @property
    def done(self) -> bool:
        limit = self.settings.max_alerts
        return self.stopping or (limit is not None and self.handled >= limit)

    def handle(self, raw: bytes) -> None:
        try:
            alert = json.loads(raw)
            alert_id, source = str(alert["id"]), alert["source_exchange_id"]
        except (ValueError, KeyError, TypeError):
            log(f"skipped a malformed message: {raw[:80]!r}")
            return
        # The stream holds every exchange's alerts; the channels only ours.
        if source not in self.settings.exchanges or not self.state.first_time(alert_id):
            return
        on_alert(alert, as_json=self.settings.as_json)
        self.handled += 1
        self.state.save()

    def catch_up(self, client: redis.Redis) -> int:
        """Handle every stream entry after the checkpoint; returns how many entries were read."""
        read = 0
        while not self.done:
            start = f"({self.state.last_id}" if self.state.last_id else "-"
            entries = client.xrange(self._stream, min=start, max="+", count=STREAM_PAGE)
            if not entries:
                break
            for entry_id, fields in entries:
                data = (fields or {}).get(b"data")  # every entry has one field, `data`
                if isinstance(data, bytes):
                    self.handle(data)
                self.state.last_id = _text(entry_id)
                read += 1
                if self.done:
                    break
            self.state.save()
        return read

    def start_point(self, client: redis.Redis) -> None:
        """A first run starts after the newest entry (or at the beginning with --from-start)."""
        if self.state.last_id is None and not self.settings.from_start:
            newest = client.xrevrange(self._stream, count=1)
            self.state.last_id = _text(newest[0][0]) if newest else "0-0"
            self.state.save()

    def session(self, client: redis.Redis) -> None:
        """One connection's life: subscribe, catch up, follow live until done."""
        pubsub = client.pubsub()  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(*self._channels)
            confirmed = 0
            while confirmed < len(self._channels):  # subscribed before reading the stream
                message = pubsub.get_message(timeout=5.0)
                confirmed += bool(message and message["type"] == "subscribe")
            self.start_point(client)
            missed = self.catch_up(client)
            log(f"caught up ({missed} stream entries); listening on {', '.join(self._channels)}")
            self.follow(client, pubsub)
        finally:
            pubsub.close()

    def follow(self, client: redis.Redis, pubsub: Any) -> None:
        next_reconcile = time.monotonic() + RECONCILE_EVERY_S
        while not self.done:
            message = pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None and message["type"] == "message":
                self.handle(message["data"])
            if time.monotonic() >= next_reconcile:
                self.catch_up(client)
                next_reconcile = time.monotonic() + RECONCILE_EVERY_S

    def run(self) -> int:
        delay = 1.0
        while not self.done:
            client = redis.Redis.from_url(self.settings.redis_url, socket_connect_timeout=5)
            try:
                self.session(client)
                delay = 1.0
            except redis.ConnectionError as exc:
                # Reconnect with backoff; the stream catch-up covers the time we were away.
                log(f"Redis connection lost ({exc}); retrying in {delay:.0f}s")
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
            finally:
                client.close()
        self.state.save()
        return 0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def log(text: str) -> None:
    print(f"alert_bot: {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(sys.argv[1:] if argv is None else argv, dict(os.environ))
    bot = AlertBot(settings)

    def stop(signum: int, frame: Any) -> None:
        bot.stopping = True  # the loop notices within a second and saves its state

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return bot.run()


if __name__ == "__main__":
    raise SystemExit(main())
