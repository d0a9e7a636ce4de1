"""`livermore db migrate` on real Postgres: seed, EXC-02 backfill, idempotence, tamper refusal,
Atlas bookkeeping, database creation, the lock, and `db pull --check`."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from pathlib import Path

import asyncpg
import pytest

from livermore_common.atlasdir import ChecksumError, MigrationError, file_hashes, write_sum
from livermore_common.migrate import (
    default_migrations_dir,
    ensure_database,
    migrate,
    read_status,
    with_database,
)
from services.dbtool.__main__ import main as db_main

pytestmark = pytest.mark.integration

MIGRATIONS = default_migrations_dir({})
FIRST = "20240605120000"  # pre-release schema
EXC01_COLUMNS = {
    "id",
    "name",
    "display_name",
    "ws_url",
    "rest_url",
    "supported_timeframes",
    "api_limits",
    "fee_schedule",
    "geo_restrictions",
    "is_active",
    "created_at",
    "updated_at",
}
REVISIONS = "atlas_schema_revisions.atlas_schema_revisions"


async def _fetch(url: str, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def _run_cli(*argv: str) -> int:
    # The CLI owns its event loop (asyncio.run), so it runs on a thread of its own here.
    return await asyncio.to_thread(db_main, list(argv))


async def test_empty_database_gets_seeded_exchanges_with_every_column(database_url: str) -> None:
    result = await migrate(database_url)
    assert [f.name for f in result.applied] == sorted(p.name for p in MIGRATIONS.glob("*.sql"))
    cols = await _fetch(
        database_url,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'exchanges'",
    )
    assert {r["column_name"] for r in cols} == EXC01_COLUMNS
    rows = {r["name"]: r for r in await _fetch(database_url, "SELECT * FROM exchanges")}
    assert {name: r["id"] for name, r in rows.items()} == {
        "coinbase": 1,
        "binance": 2,
        "binance_us": 3,
    }
    coinbase, binance, binance_us = rows["coinbase"], rows["binance"], rows["binance_us"]
    assert coinbase["display_name"] == "Coinbase Advanced Trade"
    assert coinbase["ws_url"] == "wss://advanced-trade-ws.coinbase.com"
    assert coinbase["rest_url"] == "https://api.coinbase.com"
    assert binance["ws_url"] == "wss://stream.binance.com:9443"
    assert binance["rest_url"] == "https://api.binance.com"
    assert binance_us["ws_url"] == "wss://stream.binance.us:9443"
    assert binance_us["rest_url"] == "https://api.binance.us"
    assert all(r["is_active"] and "1m" in r["supported_timeframes"] for r in rows.values())


async def test_seed_values_are_structured_json(database_url: str) -> None:
    await migrate(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.set_type_codec(
            "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
        rows = {
            r["name"]: r
            for r in await conn.fetch(
                "SELECT name, api_limits, fee_schedule, geo_restrictions FROM exchanges"
            )
        }
    finally:
        await conn.close()
    assert rows["binance"]["api_limits"] == {
        "rest_weight_per_minute": 6000,
        "klines_weight": 2,
        "klines_per_request": 1000,
        "ws_connections_per_5min": 300,
        "ws_messages_per_second": 5,
        "streams_per_connection": 1024,
    }
    assert rows["coinbase"]["api_limits"]["ws_connections_per_second"] == 750
    assert rows["coinbase"]["api_limits"]["ws_messages_per_second"] == 8
    assert rows["coinbase"]["api_limits"]["rest_requests_per_second"] == 10
    assert rows["coinbase"]["fee_schedule"] == {"maker": 0.006, "taker": 0.012}
    assert rows["binance"]["fee_schedule"] == {"maker": 0.001, "taker": 0.001}
    assert rows["binance"]["geo_restrictions"] == {"blocked_countries": ["US"]}


async def test_identity_sequence_is_past_the_seed(database_url: str) -> None:
    await migrate(database_url)
    rows = await _fetch(
        database_url,
        "INSERT INTO exchanges (name, display_name, ws_url, rest_url) "
        "VALUES ('kraken', 'Kraken', 'wss://ws.kraken.com', 'https://api.kraken.com') RETURNING id",
    )
    assert rows[0]["id"] == 4


async def test_foreign_keys_point_at_exchanges(database_url: str) -> None:
    await migrate(database_url)
    nullable = await _fetch(
        database_url,
        "SELECT is_nullable FROM information_schema.columns "
        "WHERE table_name = 'user_exchanges' AND column_name = 'exchange_id'",
    )
    assert nullable[0]["is_nullable"] == "YES"
    fks = await _fetch(
        database_url,
        """
        SELECT c.conrelid::regclass::text AS tbl, a.attname AS col,
               c.confrelid::regclass::text AS ref, ra.attname AS ref_col
        FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
        JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = ANY (c.confkey)
        WHERE c.contype = 'f'
        """,
    )
    edges = {(r["tbl"], r["col"]): (r["ref"], r["ref_col"]) for r in fks}
    assert edges[("user_exchanges", "exchange_id")] == ("exchanges", "id")
    assert edges[("alert_history", "exchange_id")] == ("exchanges", "id")
    assert edges[("exchange_symbols", "exchange_id")] == ("exchanges", "id")
    assert edges[("positions", "user_exchange_id")] == ("user_exchanges", "id")


async def test_rows_from_before_exc02_are_backfilled(database_url: str) -> None:
    first = await migrate(database_url, to_version=FIRST)
    assert [f.version for f in first.applied] == [FIRST]
    conn = await asyncpg.connect(database_url)
    try:
        user_id = await conn.fetchval("INSERT INTO users (username) VALUES ('ann') RETURNING id")
        ids = {}
        for name in ("Coinbase", "BINANCE", " binance us ", "binance-us", "Kraken"):
            ids[name] = await conn.fetchval(
                "INSERT INTO user_exchanges (user_id, exchange_name) VALUES ($1, $2) RETURNING id",
                user_id,
                name,
            )
        # Pre-release alerts pointed at the user's account (the original's mistake).
        await conn.execute(
            "INSERT INTO alert_history (exchange_id, symbol, timeframe, alert_type, trigger_label)"
            " VALUES ($1, 'BTCUSDT', '1h', 'macdv', 'level_150'),"
            " ($2, 'XBTUSD', '1h', 'macdv', 'level_-150')",
            ids["BINANCE"],
            ids["Kraken"],
        )
    finally:
        await conn.close()
    rest = await migrate(database_url)
    assert len(rest.applied) == len(list(MIGRATIONS.glob("*.sql"))) - 1
    rows = await _fetch(database_url, "SELECT id, exchange_id FROM user_exchanges")
    backfilled = {r["id"]: r["exchange_id"] for r in rows}
    assert backfilled[ids["Coinbase"]] == 1
    assert backfilled[ids["BINANCE"]] == 2
    assert backfilled[ids[" binance us "]] == 3
    assert backfilled[ids["binance-us"]] == 3
    assert backfilled[ids["Kraken"]] is None  # no such venue: stays NULL, nothing invented
    alerts = await _fetch(
        database_url, "SELECT symbol, exchange_id, alert_id FROM alert_history ORDER BY id"
    )
    assert [(a["symbol"], a["exchange_id"]) for a in alerts] == [("BTCUSDT", 2), ("XBTUSD", None)]
    assert all(a["alert_id"].startswith("legacy:") for a in alerts)


async def test_second_run_applies_nothing(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await migrate(database_url)
    query = f"SELECT version, executed_at FROM {REVISIONS} ORDER BY version"
    before = await _fetch(database_url, query)
    again = await migrate(database_url)
    assert again.applied == []
    assert before and again.current_version == before[-1]["version"]
    assert await _fetch(database_url, query) == before
    assert await _run_cli("migrate", "--database-url", database_url) == 0
    assert "nothing to apply" in capsys.readouterr().out
    status = await read_status(database_url)
    assert status.pending == [] and status.drifted == [] and status.checksum_problem is None


async def test_revisions_are_recorded_the_atlas_way(database_url: str) -> None:
    await migrate(database_url)
    rows = await _fetch(database_url, f"SELECT * FROM {REVISIONS} ORDER BY version")
    files = sorted(MIGRATIONS.glob("*.sql"))
    hashes = dict(file_hashes([(p.name, p.read_bytes()) for p in files]))
    assert [r["version"] for r in rows] == [p.name.split("_", 1)[0] for p in files]
    for row, path in zip(rows, files, strict=True):
        assert row["description"] == path.stem.split("_", 1)[1]
        assert row["type"] == 2
        assert row["applied"] == row["total"] > 0
        assert row["hash"] == hashes[path.name]
        assert row["error"] is None and row["error_stmt"] is None
        partial = json.loads(row["partial_hashes"])
        assert len(partial) == row["total"] and all(h.startswith("h1:") for h in partial)
        assert row["execution_time"] >= 0 and row["operator_version"]


async def test_schema_bound_url_keeps_revisions_in_that_schema(database_url: str) -> None:
    bound = database_url + "?search_path=public"
    await migrate(bound)
    rows = await _fetch(database_url, "SELECT count(*) AS n FROM public.atlas_schema_revisions")
    assert rows[0]["n"] == len(list(MIGRATIONS.glob("*.sql")))
    assert await _run_cli("pull", "--check", "--database-url", bound) == 0


def _copy_migrations(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, target)
    return target


async def test_tampered_file_is_refused_by_name(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = _copy_migrations(tmp_path)
    victim = directory / "20250110090000_exchanges.sql"
    victim.write_text(victim.read_text().replace("'Binance'", "'Binance (edited)'"))
    with pytest.raises(ChecksumError) as info:
        await migrate(database_url, directory)
    assert info.value.file == victim.name
    assert await _run_cli("migrate", "--database-url", database_url, "--dir", str(directory)) == 1
    assert victim.name in capsys.readouterr().err
    tables = await _fetch(
        database_url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    )
    assert tables == []  # refused before touching the database


async def test_unknown_file_is_refused_by_name(database_url: str, tmp_path: Path) -> None:
    directory = _copy_migrations(tmp_path)
    (directory / "20250110090150_sneaky.sql").write_text("DROP TABLE users;\n")
    with pytest.raises(ChecksumError, match=r"20250110090150_sneaky\.sql"):
        await migrate(database_url, directory)


async def test_failing_file_is_rolled_back_and_not_recorded(
    database_url: str, tmp_path: Path
) -> None:
    directory = _copy_migrations(tmp_path)
    (directory / "20990101000000_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\nSELECT no_such_function();\n"
    )
    write_sum(directory)
    with pytest.raises(MigrationError, match=r"20990101000000_broken\.sql: statement 2 of 2"):
        await migrate(database_url, directory)
    versions = [
        r["version"] for r in await _fetch(database_url, f"SELECT version FROM {REVISIONS}")
    ]
    assert "20990101000000" not in versions
    assert len(versions) == len(list(MIGRATIONS.glob("*.sql")))
    assert (await _fetch(database_url, "SELECT to_regclass('half_done') AS t"))[0]["t"] is None


async def test_concurrent_migrators_apply_each_file_once(database_url: str) -> None:
    results = await asyncio.gather(
        migrate(database_url), migrate(database_url), migrate(database_url)
    )
    applied = [f.name for r in results for f in r.applied]
    assert sorted(applied) == sorted(p.name for p in MIGRATIONS.glob("*.sql"))


async def test_creates_the_database_when_missing(pg_admin_url: str) -> None:
    name = f"livermore_test_create_{uuid.uuid4().hex[:8]}"
    url = with_database(pg_admin_url, name)
    try:
        result = await migrate(url)
        assert result.database_created
        assert (await _fetch(url, "SELECT count(*) AS n FROM exchanges"))[0]["n"] == 3
        assert await ensure_database(url) is False
    finally:
        admin = await asyncpg.connect(pg_admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def test_pull_check_passes_on_a_migrated_database(database_url: str, tmp_path: Path) -> None:
    await migrate(database_url)
    assert await _run_cli("pull", "--check", "--database-url", database_url) == 0
    stale = tmp_path / "models.py"
    stale.write_text("# stale\n")
    assert (
        await _run_cli("pull", "--check", "--database-url", database_url, "--output", str(stale))
        == 1
    )
    assert stale.read_text() == "# stale\n"  # --check never writes
    assert await _run_cli("pull", "--database-url", database_url, "--output", str(stale)) == 0
    assert (
        await _run_cli("pull", "--check", "--database-url", database_url, "--output", str(stale))
        == 0
    )


async def test_status_command_reports_pending_then_current(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _run_cli("status", "--database-url", database_url) == 0
    out = capsys.readouterr().out
    assert "current version: none" in out and "pending 20240605120000_prerelease_schema.sql" in out
    await migrate(database_url, to_version=FIRST)
    assert await _run_cli("status", "--database-url", database_url) == 0
    out = capsys.readouterr().out
    assert f"current version: {FIRST}" in out and "pending 20250110090000_exchanges.sql" in out
    directory = _copy_migrations(tmp_path)
    (directory / "20240605120000_prerelease_schema.sql").write_text("-- rewritten history\n")
    assert await _run_cli("status", "--database-url", database_url, "--dir", str(directory)) == 1
    captured = capsys.readouterr()
    assert "20240605120000_prerelease_schema.sql" in captured.err
