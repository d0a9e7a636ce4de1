"""`livermore ctl`: signed commands, every answer printed, waits for every live instance."""

from __future__ import annotations

import io
import json

import pytest

from livermore_common.config import CommonSettings
from services.ctl.__main__ import build_parser, main, request_from
from services.ctl.commands import CommandRequest, run_command
from tests.helpers import eventually
from tests.integration.ingestor.conftest import settings_for

from .conftest import run_cli


def _block(out: str) -> dict[str, str]:
    """The indented `name value` lines of a status answer."""
    fields = {}
    for line in out.splitlines():
        if line.startswith("  ") and not line.startswith("  result"):
            name, _, value = line.strip().partition(" ")
            fields[name] = value.strip()
    return fields


async def _run(settings: CommonSettings, verb: str, exchange: str, **kw) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    request = CommandRequest(verb=verb, exchange=exchange, timeout=kw.pop("timeout", 10.0), **kw)
    code = await run_command(request, settings, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


async def test_start_status_stop_against_a_running_ingestor(
    sim, start_ingestor, database_url, redis_url, namespace, redis_client, keyspace, client_env
) -> None:
    settings = settings_for("coinbase", database_url, redis_url, namespace, symbols=("BTC-USD",))
    await start_ingestor(settings, instance_id="i1")

    async def state() -> str | None:
        raw = await redis_client.hget(keyspace.exchange_status_key(1), "connection_state")
        return raw.decode() if raw else None

    await eventually(lambda: _is(state, "idle"), timeout=10)

    started = await run_cli(client_env, "ctl", "start", "coinbase")
    assert started.code == 0, started
    lines = started.out.splitlines()
    assert lines.index("[i1] ack") < lines.index("[i1] success"), started
    assert "result: started" in started.out
    await eventually(lambda: _is(state, "connected"), timeout=20)

    status = await run_cli(client_env, "ctl", "status", "coinbase")
    assert status.code == 0, status
    fields = _block(status.out)
    assert fields["connection_state"] == "connected"
    assert fields["symbols"] == "1"
    assert fields["last_heartbeat"] != "-" and fields["connected_at"] != "-"
    assert "announced=" in fields["counters"] and "backfilled=" in fields["counters"]

    as_json = await run_cli(client_env, "ctl", "status", "1", "--json")
    assert as_json.code == 0, as_json
    answers = [json.loads(line) for line in as_json.out.splitlines()]
    assert [a["status"] for a in answers] == ["ack", "success"]
    assert answers[1]["instance_id"] == "i1"
    assert answers[1]["data"]["connection_state"] == "connected"
    assert answers[1]["data"]["symbols"] == ["BTC-USD"]

    again = await run_cli(client_env, "ctl", "start", "coinbase")
    assert again.code == 0 and "[i1] already_started" in again.out, again
    stopped = await run_cli(client_env, "ctl", "stop", "coinbase")
    assert stopped.code == 0 and "[i1] success" in stopped.out, stopped
    await eventually(lambda: _is(state, "idle"), timeout=10)
    idle = await run_cli(client_env, "ctl", "stop", "coinbase")
    assert idle.code == 0 and "[i1] already_idle" in idle.out, idle
    # An error answer is exit 1: an idle ingestor cannot backfill.
    refused = await run_cli(client_env, "ctl", "force-backfill", "coinbase")
    assert refused.code == 1, refused
    assert "[i1] error: not connected" in refused.out


async def _is(read, want: str) -> bool:  # type: ignore[no-untyped-def]
    return await read() == want


async def test_waits_for_every_live_instance_but_not_for_dead_ones(
    migrated_url, make_responder, redis_client, keyspace, settings
) -> None:
    first = await make_responder("a")
    # "b" answers only once "a" has: ctl must still be listening then.
    await make_responder("b", answer_after=first.answered)
    # An instance that crashed: still in the set, but its health key is gone.
    await make_responder("crashed", alive=False, ack_only=True)
    code, out, err = await _run(settings, "getStatus", "coinbase", timeout=5.0)
    assert code == 0, (out, err)
    assert "for 2 instance(s)" in out
    assert out.index("[a] success") < out.index("[b] success")
    fields = _block(out)
    assert fields["connection_state"] == "connected" and fields["symbols"] == "2"
    assert fields["counters"] == "closed=7 announced=9 dropped=0 gaps=0 backfilled=2"


async def test_an_instance_that_only_acknowledges_is_a_timeout(
    migrated_url, make_responder, settings
) -> None:
    await make_responder("a", ack_only=True)
    code, out, err = await _run(settings, "stop", "coinbase", timeout=1.0)
    assert code == 1
    assert "[a] ack" in out and "[a] success" not in out
    assert "timeout: 0 of 1 instance(s) finished stop" in err


async def test_no_ingestor_at_all_is_a_timeout(migrated_url, settings) -> None:
    code, out, err = await _run(settings, "start", "binance", timeout=0.5)
    assert code == 1
    assert "no answer to start for binance" in err
    assert "[" not in out


async def test_a_refused_signature_is_an_error(migrated_url, make_responder, settings) -> None:
    await make_responder("a", secret="a-different-secret")
    code, out, _ = await _run(settings, "start", "coinbase", timeout=5.0)
    assert code == 1
    assert "[a] error: bad signature" in out


async def test_force_backfill_and_refresh_symbols_carry_signed_parameters(
    migrated_url, make_responder, settings
) -> None:
    ingestors = [await make_responder("a"), await make_responder("b")]
    manager = await make_responder("symbols", register=False, verbs=frozenset({"refresh-symbols"}))
    argv = ["force-backfill", "coinbase", "--symbols", "BTC-USD, ETH-USD"]
    args = build_parser().parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    assert await run_command(request_from(args), settings, out=out, err=err) == 0, err.getvalue()
    for responder in ingestors:
        (command,) = responder.received
        assert command.command == "force-backfill" and command.exchange == "coinbase"
        assert command.params == {"symbols": ["BTC-USD", "ETH-USD"]}

    args = build_parser().parse_args(["refresh-symbols", "all", "--json"])
    out, err = io.StringIO(), io.StringIO()
    assert await run_command(request_from(args), settings, out=out, err=err) == 0, err.getvalue()
    (command,) = manager.received
    assert command.command == "refresh-symbols" and command.exchange == "all"
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(a["instance_id"], a["status"]) for a in answers] == [
        ("symbols", "ack"),
        ("symbols", "success"),
    ]


async def test_without_postgres_an_id_still_reaches_every_live_instance(
    make_responder, redis_client, keyspace, settings
) -> None:
    # The status hash remembers the exchange's name, which names the instances' health keys.
    await redis_client.hset(keyspace.exchange_status_key(1), "exchange", "coinbase")
    first = await make_responder("a")
    await make_responder("b", answer_after=first.answered)
    offline = CommonSettings(
        redis_url=settings.redis_url,
        database_url=settings.database_url.rpartition("/")[0] + "/livermore_no_such_database",
        namespace=settings.namespace,
        control_secret=settings.control_secret,
    )
    code, out, err = await _run(offline, "getStatus", "1", timeout=5.0)
    assert code == 0, (out, err)
    assert "cannot read exchanges from Postgres" in err
    assert "[a] success" in out and "[b] success" in out


async def test_unknown_exchange_is_a_usage_error(migrated_url, settings) -> None:
    code, _, err = await _run(settings, "start", "kraken", timeout=0.5)
    assert code == 2
    assert "unknown exchange 'kraken'" in err and "coinbase (1)" in err


def test_without_a_secret_ctl_refuses_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["status", "coinbase"], environ={"LIVERMORE_NAMESPACE": "unused:"})
    assert code == 2
    assert "LIVERMORE_CONTROL_SECRET is not set" in capsys.readouterr().err


def test_bad_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reboot", "coinbase"], environ={}) == 2
    assert main(["status", "coinbase", "--timeout", "0"], environ={}) == 2
    assert main(["--help"], environ={}) == 0
    assert "force-backfill" in capsys.readouterr().out
