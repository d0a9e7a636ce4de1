"""atlas.sum: the algorithm against Atlas's own output, a hand computation and a second
implementation; directory verification; the committed migrations and their sum."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import datetime
from pathlib import Path

import pytest

from livermore_common.atlasdir import (
    SUM_FILE,
    ChecksumError,
    MigrationFile,
    file_hashes,
    parse_sum,
    render_sum,
    verify_directory,
    write_sum,
)
from livermore_common.migrate import default_migrations_dir

# Atlas's announcement of its execution engine (atlasgo.io/blog/2022/09/05) shows three files and
# the atlas.sum the Atlas CLI wrote for them: a vector produced by the real tool.
ATLAS_BLOG_FILES = [
    (
        "1_initial.sql",
        b'-- add new schema named "my_schema"\nCREATE DATABASE `my_schema`;\n'
        b'-- create "tbl" table\nCREATE TABLE `my_schema`.`tbl` (`col` int NOT NULL);',
    ),
    ("2_second.sql", b"ALTER TABLE `my_schema`.`tbl` ADD `col_2` TEXT;"),
    ("3_third.sql", b"CREATE TABLE `tbl_2` (`col` int NOT NULL);"),
]
ATLAS_BLOG_SUM = (
    "h1:cD9kOv5VDRLrKVZ0pM4CxAlhH6mgE8PQLpUeuIMKDcs=\n"
    "1_initial.sql h1:SrFyOe0eg5WnE96GH3TtAt6046sfrOK4YKZYBlYr1SA=\n"
    "2_second.sql h1:FPzwV+MzwyCss7SASZtyafXiYc9Un5bzlcc3u7MxLJU=\n"
    "3_third.sql h1:uD+xDcA3Q+gHqwca2ZBDAHWYvC2eiUcwr1IgMsN0Q6c=\n"
)

# Computed by hand with openssl, independently of this code:
#   printf '1_a.sqlSELECT 1;\n' | openssl dgst -sha256 -binary | base64
#   printf '1_a.sqlSELECT 1;\n2_b.sqlSELECT 2;\n' | openssl dgst -sha256 -binary | base64
#   printf '%s' "1_a.sql$H1" "2_b.sql$H2" | openssl dgst -sha256 -binary | base64
HAND_FILES = [("1_a.sql", b"SELECT 1;\n"), ("2_b.sql", b"SELECT 2;\n")]
HAND_H1 = "oHx7vmeRbxB72kdSGUkFhE08red3y82zeqcbzCxkGjo="
HAND_H2 = "jqdn/UCU1bnj96EwRLYv9FRnrwv3yIEfGHtJessEvPM="
HAND_SUM = "VNvw0pDgavFX/sdOa4OQ4cdfXK8LyCjaMKnLrKqiXHs="


def _independent_sum(files: list[tuple[str, bytes]]) -> str:
    """A second implementation: rehash the whole prefix from scratch for every file."""
    ordered = sorted(files)
    entries = []
    for i, (name, _) in enumerate(ordered):
        prefix = b"".join(n.encode() + c for n, c in ordered[: i + 1])
        entries.append((name, base64.b64encode(hashlib.sha256(prefix).digest()).decode()))
    pairs = "".join(n + h for n, h in entries).encode()
    head = "h1:" + base64.b64encode(hashlib.sha256(pairs).digest()).decode()
    return "\n".join([head, *(f"{n} h1:{h}" for n, h in entries)]) + "\n"


def test_matches_the_sum_atlas_wrote() -> None:
    assert render_sum(ATLAS_BLOG_FILES) == ATLAS_BLOG_SUM


def test_matches_a_hand_computed_example() -> None:
    assert file_hashes(HAND_FILES) == [("1_a.sql", HAND_H1), ("2_b.sql", HAND_H2)]
    assert render_sum(HAND_FILES) == (
        f"h1:{HAND_SUM}\n1_a.sql h1:{HAND_H1}\n2_b.sql h1:{HAND_H2}\n"
    )


@pytest.mark.parametrize(
    "files",
    [
        [],
        [("1.sql", b"")],
        [("b_2.sql", "é;\n".encode()), ("a_1.sql", b"x" * 10_000), ("c.sql", b"\x00\xff")],
        [(f"{i:014d}_m{i}.sql", f"SELECT {i};\n".encode()) for i in range(12)],
    ],
)
def test_agrees_with_an_independent_implementation(files: list[tuple[str, bytes]]) -> None:
    assert render_sum(files) == _independent_sum(files)


def test_parse_sum_round_trips_and_rejects_garbage() -> None:
    total, entries = parse_sum(ATLAS_BLOG_SUM)
    assert total == "cD9kOv5VDRLrKVZ0pM4CxAlhH6mgE8PQLpUeuIMKDcs="
    assert [n for n, _ in entries] == ["1_initial.sql", "2_second.sql", "3_third.sql"]
    with pytest.raises(ChecksumError):
        parse_sum("h1:abc\nno hash on this line\n")
    with pytest.raises(ChecksumError):
        parse_sum("")


@pytest.mark.parametrize(
    ("name", "version", "description"),
    [
        ("20240605120000_prerelease_schema.sql", "20240605120000", "prerelease_schema"),
        ("1_initial.sql", "1", "initial"),
        ("2.10.x-20_description.sql", "2.10.x-20", "description"),
        ("1.a_sub.up.sql", "1.a", "sub.up"),
        ("3.sql", "3", ""),
    ],
)
def test_version_and_description_parse_like_atlas(
    name: str, version: str, description: str
) -> None:
    f = MigrationFile(name=name, content=b"")
    assert (f.version, f.description) == (version, description)


# ---- directory verification ----------------------------------------------------------------


def _write_dir(path: Path, files: list[tuple[str, bytes]]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, content in files:
        (path / name).write_bytes(content)
    write_sum(path)
    return path


def test_verify_accepts_a_consistent_directory(tmp_path: Path) -> None:
    directory = _write_dir(tmp_path / "m", HAND_FILES)
    assert [f.name for f in verify_directory(directory)] == ["1_a.sql", "2_b.sql"]
    assert (directory / SUM_FILE).read_text() == render_sum(HAND_FILES)


def test_verify_names_an_edited_file(tmp_path: Path) -> None:
    directory = _write_dir(tmp_path / "m", [*HAND_FILES, ("3_c.sql", b"SELECT 3;\n")])
    (directory / "2_b.sql").write_bytes(b"SELECT 22;\n")
    with pytest.raises(ChecksumError, match=r"2_b\.sql was changed") as info:
        verify_directory(directory)
    assert info.value.file == "2_b.sql"


def test_verify_names_an_unknown_file(tmp_path: Path) -> None:
    directory = _write_dir(tmp_path / "m", HAND_FILES)
    (directory / "15_sneaky.sql").write_bytes(b"DROP TABLE users;\n")
    with pytest.raises(ChecksumError, match=r"unknown migration file 15_sneaky\.sql") as info:
        verify_directory(directory)
    assert info.value.file == "15_sneaky.sql"


def test_verify_names_a_missing_file(tmp_path: Path) -> None:
    directory = _write_dir(tmp_path / "m", HAND_FILES)
    (directory / "1_a.sql").unlink()
    with pytest.raises(ChecksumError, match=r"1_a\.sql is listed in atlas\.sum but the file"):
        verify_directory(directory)


def test_verify_refuses_a_hand_edited_sum_and_a_missing_sum(tmp_path: Path) -> None:
    directory = _write_dir(tmp_path / "m", HAND_FILES)
    text = (directory / SUM_FILE).read_text()
    (directory / SUM_FILE).write_text(text.replace(HAND_H2, HAND_H1))
    with pytest.raises(ChecksumError, match="edited by hand"):
        verify_directory(directory)
    (directory / SUM_FILE).unlink()
    with pytest.raises(ChecksumError, match="missing"):
        verify_directory(directory)


def test_verify_refuses_two_files_with_one_version(tmp_path: Path) -> None:
    directory = _write_dir(tmp_path / "m", [*HAND_FILES, ("1_again.sql", b"SELECT 1;\n")])
    with pytest.raises(ChecksumError, match="share version 1"):
        verify_directory(directory)


# ---- the project's own migrations ----------------------------------------------------------

MIGRATIONS = default_migrations_dir({})


def test_committed_sum_matches_committed_migrations() -> None:
    files = verify_directory(MIGRATIONS)
    assert len(files) >= 5
    expected = render_sum([(f.name, f.content) for f in files])
    assert (MIGRATIONS / SUM_FILE).read_text(encoding="utf-8") == expected
    assert expected == _independent_sum([(f.name, f.content) for f in files])


def test_migration_names_use_atlas_timestamp_versions() -> None:
    for f in verify_directory(MIGRATIONS):
        assert re.fullmatch(r"\d{14}_[a-z0-9_]+\.sql", f.name), f.name
        datetime.strptime(f.version, "%Y%m%d%H%M%S")  # a real timestamp


def test_migrations_dir_env_override(tmp_path: Path) -> None:
    assert default_migrations_dir({"LIVERMORE_MIGRATIONS_DIR": str(tmp_path)}) == tmp_path
    assert MIGRATIONS.parts[-3:] == ("schema", "atlas", "migrations")


def test_db_hash_command_rehashes_after_an_edit(tmp_path: Path) -> None:
    from services.dbtool.__main__ import main

    directory = _write_dir(tmp_path / "m", HAND_FILES)
    (directory / "2_b.sql").write_bytes(b"SELECT 22;\n")
    with pytest.raises(ChecksumError):
        verify_directory(directory)
    assert main(["hash", "--dir", str(directory)]) == 0
    assert [f.name for f in verify_directory(directory)] == ["1_a.sql", "2_b.sql"]
