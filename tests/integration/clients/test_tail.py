"""`livermore tail alerts|events` as a real process: filters, replay, de-duplication, exit codes."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import msgspec
import pytest

from livermore_common import messages
from livermore_common.messages import Alert, ControlResponse, LifecycleEvent
from services.ctl.tail import main
from tests.helpers import eventually

from .conftest import ROOT


def alert(n: int, exchange_id: int = 1, name: str = "coinbase", **kw) -> Alert:  # type: ignore[no-untyped-def]
    fields = dict(
        id=f"alert-{n}",
        source_exchange_id=exchange_id,
        source_exchange_name=name,
        symbol="BTC-USD" if exchange_id == 1 else "BTCUSDT",
        timeframe="5m",
        alert_type="macdv",
        trigger_label="level_-150",
        trigger_value=-160.5,
        signal=-140.25,
        histogram=-20.25,
        stage="oversold",
        price=42000.5,
        candle_timestamp=1_704_067_200_000 + n * 300_000,
        triggered_at=1_704_067_500_000 + n * 300_000,
    )
    fields.update(kw)
    return Alert(**fields)


class Tail:
    """A `livermore tail ...` process whose output is read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, env: dict[str, str], *args: str) -> Tail:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.cli",
            "tail",
            *args,
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def line(self, timeout: float = 20) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        assert raw, f"tail ended early: {await self.stderr()}"
        return raw.decode().rstrip("\n")

    async def line_while_publishing(self, redis, channel: str, payload: bytes) -> str:  # type: ignore[no-untyped-def]
        """Publish until the tail prints a line: it may still be subscribing at first."""
        assert self.proc.stdout is not None
        read = asyncio.ensure_future(self.proc.stdout.readline())
        deadline = time.monotonic() + 20
        while not read.done() and time.monotonic() < deadline:
            await redis.publish(channel, payload)
            await asyncio.wait({read}, timeout=0.2)
        assert read.done(), f"tail printed nothing: {await self.stderr()}"
        return read.result().decode().rstrip("\n")

    async def stderr(self) -> str:
        if self.proc.returncode is None:
            self.proc.kill()
        assert self.proc.stderr is not None
        return (await self.proc.stderr.read()).decode()

    async def exit_code(self, timeout: float = 20) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout)

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


@pytest.fixture
async def tails():  # type: ignore[no-untyped-def]
    started: list[Tail] = []
    yield started
    for tail in started:
        tail.kill()
        await tail.proc.wait()


async def test_tail_alerts_prints_a_coinbase_alert_with_its_source_exchange(
    migrated_url, client_env, redis_client, keyspace, tails
) -> None:
    tail = await Tail.start(client_env, "alerts", "--exchange", "coinbase", "--count", "1")
    tails.append(tail)
    first = alert(1)
    line = await tail.line_while_publishing(
        redis_client, keyspace.alerts_channel(1), messages.encode(first)
    )
    assert await tail.exit_code() == 0
    assert "coinbase(1)" in line and "BTC-USD" in line and "5m" in line
    assert "level_-150" in line and "macd_v=-160.50" in line and "price=42000.5" in line
    assert "2024-01-01T00:10:00.000Z" in line  # triggered_at
    assert f"id={first.id}" in line


async def test_tail_alerts_follows_every_exchange_and_prints_each_alert_once(
    client_env, redis_client, keyspace, tails
) -> None:
    tail = await Tail.start(client_env, "alerts", "--json", "--count", "2")
    tails.append(tail)
    binance = alert(1, exchange_id=2, name="binance")
    # Published repeatedly while the tail subscribes, and once more after: printed once.
    first = await tail.line_while_publishing(
        redis_client, keyspace.alerts_channel(2), messages.encode(binance)
    )
    await redis_client.publish(keyspace.alerts_channel(2), messages.encode(binance))
    await redis_client.publish(keyspace.alerts_channel(2), b"not json")
    await redis_client.publish(keyspace.alerts_channel(1), messages.encode(alert(2)))
    second = await tail.line()
    assert await tail.exit_code() == 0
    assert msgspec.json.decode(first, type=Alert) == binance
    assert json.loads(second)["source_exchange_name"] == "coinbase"
    assert "skipped a malformed alert" in await tail.stderr()


async def test_tail_alerts_from_the_stream_then_live(
    client_env, redis_client, keyspace, tails
) -> None:
    a, b, c = alert(1), alert(2, exchange_id=2, name="binance"), alert(3, exchange_id=2)
    ids = [
        (await redis_client.xadd(keyspace.alert_stream, {"data": messages.encode(x)})).decode()
        for x in (a, b, c)
    ]
    everything = await Tail.start(client_env, "alerts", "--from-stream", "--count", "3")
    tails.append(everything)
    lines = [await everything.line() for _ in range(3)]
    assert await everything.exit_code() == 0
    for line, x, entry_id in zip(lines, (a, b, c), ids, strict=True):
        assert f"id={x.id}" in line and f"stream_id={entry_id}" in line

    tail = await Tail.start(
        client_env,
        "alerts",
        "--exchange",
        "2",
        "--from-stream",
        "--since",
        ids[1],
        "--json",
        "--count",
        "2",
    )
    tails.append(tail)
    replayed = json.loads(await tail.line())
    assert replayed["id"] == c.id  # after --since, and of exchange 2 only
    # The tail subscribed before replaying: the live copy of C is a duplicate, D is new.
    await redis_client.publish(keyspace.alerts_channel(2), messages.encode(c))
    d = alert(4, exchange_id=2, name="binance")
    await redis_client.publish(keyspace.alerts_channel(2), messages.encode(d))
    assert json.loads(await tail.line())["id"] == d.id
    assert await tail.exit_code() == 0


async def test_tail_events_prints_lifecycle_events_and_responses(
    migrated_url, client_env, redis_client, keyspace, tails
) -> None:
    tail = await Tail.start(client_env, "events", "--exchange", "coinbase", "--count", "2")
    tails.append(tail)
    now = int(time.time() * 1000)
    other = LifecycleEvent(
        event="exchange:connected",
        exchange_id=2,
        exchange="binance",
        instance_id="b1",
        timestamp=now,
    )
    connected = LifecycleEvent(
        event="exchange:connected",
        exchange_id=1,
        exchange="coinbase",
        instance_id="c1",
        timestamp=now,
    )
    channel = keyspace.control_responses_channel
    await _until_subscribed(redis_client, channel)
    await redis_client.publish(channel, messages.encode(other))
    await redis_client.publish(channel, messages.encode(connected))
    ack = ControlResponse(
        command_id="cmd-1", status="ack", exchange="coinbase", instance_id="c1", timestamp=now
    )
    await redis_client.publish(channel, messages.encode(ack))
    first, second = await tail.line(), await tail.line()
    assert await tail.exit_code() == 0
    assert "exchange:connected" in first and "coinbase(1)" in first and "instance=c1" in first
    assert "response ack" in second and "command=cmd-1" in second


async def _until_subscribed(redis, channel: str) -> None:  # type: ignore[no-untyped-def]
    async def subscribed() -> bool:
        counts = dict(await redis.pubsub_numsub(channel))
        return counts.get(channel.encode(), 0) >= 1

    await eventually(subscribed, timeout=20)


def test_tail_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "--since", "1-0"], environ={}) == 2
    assert "--since needs --from-stream" in capsys.readouterr().err
    assert main(["alerts", "--from-stream", "--since", "yesterday"], environ={}) == 2
    assert main(["alerts", "--count", "0"], environ={}) == 2
    assert main(["sideways"], environ={}) == 2


def test_tail_alert_names_need_postgres_but_ids_do_not(
    capsys: pytest.CaptureFixture[str], redis_url: str, pg_admin_url: str
) -> None:
    env = {
        "LIVERMORE_REDIS_URL": redis_url,
        "LIVERMORE_DATABASE_URL": pg_admin_url.rpartition("/")[0] + "/livermore_no_such_database",
    }
    assert main(["alerts", "--exchange", "coinbase"], environ=env) == 2
    assert "pass ids instead" in capsys.readouterr().err


def test_tail_unknown_exchange_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], migrated_url: str, redis_url: str
) -> None:
    env = {"LIVERMORE_REDIS_URL": redis_url, "LIVERMORE_DATABASE_URL": migrated_url}
    assert main(["alerts", "--exchange", "kraken"], environ=env) == 2
    assert "unknown exchange 'kraken'" in capsys.readouterr().err
