"""The runner's pure parts: statement splitting, pending-file planning, Atlas's lock and schema."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from livermore_common.atlasdir import MigrationError, MigrationFile, split_statements
from livermore_common.migrate import (
    Revision,
    advisory_lock_id,
    plan_pending,
    redact_url,
    revisions_schema_for,
)

# Atlas's lexer test (sql/migrate/testdata/lex/1.sql and its .golden): the same input must give
# the same statements.
ATLAS_LEX_INPUT = """CREATE TABLE t1(id int);


CREATE TABLE t2(id int);

CREATE TABLE t3(id int);

CREATE TABLE t4(
    id int,
    name varchar(255)
);

CREATE TABLE t4(
    id int,
    `name` varchar(255) DEFAULT ';'
) ENGINE=InnoDB;

CREATE TABLE t5(
    id int
    /* comment */
    -- comment
) ENGINE=InnoDB;"""
ATLAS_LEX_GOLDEN = [
    "CREATE TABLE t1(id int);",
    "CREATE TABLE t2(id int);",
    "CREATE TABLE t3(id int);",
    "CREATE TABLE t4(\n    id int,\n    name varchar(255)\n);",
    "CREATE TABLE t4(\n    id int,\n    `name` varchar(255) DEFAULT ';'\n) ENGINE=InnoDB;",
    "CREATE TABLE t5(\n    id int\n    /* comment */\n    -- comment\n) ENGINE=InnoDB;",
]


def test_split_matches_atlas_golden_output() -> None:
    assert split_statements(ATLAS_LEX_INPUT) == ATLAS_LEX_GOLDEN


def test_split_respects_quotes_dollar_bodies_and_comments() -> None:
    sql = (
        "-- leading comment; not a statement\n"
        "/* block; /* nested; */ still comment */\n"
        "INSERT INTO t VALUES ('a;b', 'it''s; fine', \"we;ird\");\n"
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END $body$;\n"
        "SELECT $$;$$ -- trailing; comment\n;\n"
        "SELECT 2 -- no semicolon at the end\n"
    )
    assert split_statements(sql) == [
        "INSERT INTO t VALUES ('a;b', 'it''s; fine', \"we;ird\");",
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END $body$;",
        "SELECT $$;$$ -- trailing; comment\n;",
        "SELECT 2 -- no semicolon at the end",
    ]
    assert split_statements("-- only a comment\n\n") == []


def test_lock_id_is_fnv1_32_like_atlas_postgres_driver() -> None:
    # FNV-1 32-bit reference values (the FNV authors' test vectors).
    assert advisory_lock_id("") == 0x811C9DC5
    assert advisory_lock_id("a") == 0x050C5D7E
    assert advisory_lock_id("foobar") == 0x31F0B262


def test_revisions_schema_follows_atlas_rule() -> None:
    url = "postgresql://postgres@localhost/livermore"
    assert revisions_schema_for(url) == "atlas_schema_revisions"
    assert revisions_schema_for(url + "?search_path=public&sslmode=disable") == "public"
    assert revisions_schema_for(url + "?search_path=public", "audit") == "audit"


def test_redact_url_hides_only_the_password() -> None:
    assert redact_url("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"


FILES = [MigrationFile(name=f"{v}_m{v}.sql", content=b"SELECT 1;") for v in ("1", "2", "3")]


def _rev(version: str, applied: int = 1, total: int = 1, error: str | None = None) -> Revision:
    return Revision(
        version=version,
        description="",
        type=2,
        applied=applied,
        total=total,
        hash="h",
        executed_at=datetime.now(UTC),
        error=error,
    )


def test_plan_takes_files_after_the_last_applied_version() -> None:
    assert [f.version for f in plan_pending(FILES, [])] == ["1", "2", "3"]
    assert [f.version for f in plan_pending(FILES, [_rev("1")])] == ["2", "3"]
    assert plan_pending(FILES, [_rev("1"), _rev("2"), _rev("3")]) == []
    assert [f.version for f in plan_pending(FILES, [], to_version="2")] == ["1", "2"]


def test_plan_refuses_foreign_or_broken_history() -> None:
    with pytest.raises(MigrationError, match="only partly applied"):
        plan_pending(FILES, [_rev("1", applied=0, total=2)])
    with pytest.raises(MigrationError, match="only partly applied"):
        plan_pending(FILES, [_rev("1", error="boom")])
    with pytest.raises(MigrationError, match="version 9 is recorded"):
        plan_pending(FILES, [_rev("9")])
    with pytest.raises(MigrationError, match=r"1_m1\.sql was never applied"):
        plan_pending(FILES, [_rev("2")])
    with pytest.raises(MigrationError, match="no migration file has version 7"):
        plan_pending(FILES, [], to_version="7")
