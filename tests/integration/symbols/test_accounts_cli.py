"""`livermore users` and `livermore user-exchanges` against a real Postgres: secrets stay hidden."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from collections.abc import Sequence

import asyncpg
import pytest

from livermore_common import secrets
from livermore_common.db import Database
from livermore_common.migrate import migrate
from services.accounts import user_exchanges, users
from services.cli import main as cli_main

pytestmark = pytest.mark.integration

API_KEY = "organizations/org-1/apiKeys/key-abc"
API_SECRET = (
    "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIHiddenHiddenHidden\n-----END EC PRIVATE KEY-----"
)
ENV_SECRET = "env-held-binance-hmac-secret-987654"


@pytest.fixture
async def db_url(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    await migrate(database_url)
    monkeypatch.setenv("LIVERMORE_DATABASE_URL", database_url)
    monkeypatch.setenv("LIVERMORE_SECRETS_KEY", secrets.generate_key())
    return database_url


async def run_cli(
    argv: Sequence[str], capsys: pytest.CaptureFixture[str], stdin: str = ""
) -> tuple[int, str, str]:
    """Run `livermore ARGV` through the real entry point (in a thread: it calls asyncio.run)."""
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        code = await asyncio.to_thread(cli_main, list(argv))
    finally:
        sys.stdin = saved
    out, err = capsys.readouterr()
    return code, out, err


async def test_users_add_and_list(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = await run_cli(
        ["users", "add", "--username", "ann", "--email", "ann@example.com", "--role", "admin"],
        capsys,
    )
    assert code == 0 and "ann" in out
    code, _, err = await run_cli(["users", "add", "--username", "ann"], capsys)
    assert code == 1 and "already exists" in err
    code, out, _ = await run_cli(["users", "list", "--json"], capsys)
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["username"], r["email"], r["role"]) for r in rows] == [
        ("ann", "ann@example.com", "admin")
    ]


async def test_stdin_secrets_are_encrypted_and_never_echoed(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await asyncio.to_thread(users.main, ["add", "--username", "bob"]) == 0
    code, out, err = await run_cli(
        ["user-exchanges", "add", "--user", "bob", "--exchange", "Coinbase", "--api-key-stdin"],
        capsys,
        stdin=f"{API_KEY}\n{API_SECRET}\n",
    )
    assert code == 0, err
    code, listed, list_err = await run_cli(["user-exchanges", "list", "--json"], capsys)
    assert code == 0
    row = json.loads(listed.splitlines()[0])
    assert row["exchange"] == "coinbase" and row["credentials"] == "encrypted(api_key, api_secret)"
    for text in (out, err, listed, list_err):
        assert API_SECRET not in text and "MHcCAQEE" not in text and API_KEY not in text

    async with Database(db_url) as db:
        (account,) = await db.list_user_exchanges()
        stored = json.dumps(account.credentials)
        raw = await db.pool.fetchval("SELECT credentials::text FROM user_exchanges")
    assert "MHcCAQEE" not in stored and "MHcCAQEE" not in raw and API_KEY not in raw
    resolved = secrets.resolve_credentials(
        account.credentials, key=secrets.load_key(os.environ), environ={}
    )
    assert resolved["api_secret"].reveal() == API_SECRET
    assert resolved["api_key"].reveal() == API_KEY


async def test_env_references_store_names_only(
    db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAROL_BINANCE_SECRET", ENV_SECRET)
    assert await asyncio.to_thread(users.main, ["add", "--username", "carol"]) == 0
    names = ["--api-key-env", "CAROL_BINANCE_KEY", "--api-secret-env", "CAROL_BINANCE_SECRET"]
    argv = ["add", "--user", "carol", "--exchange", "binance", "--default", *names]
    code = await asyncio.to_thread(user_exchanges.main, argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert ENV_SECRET not in out + err
    async with Database(db_url) as db:
        (account,) = await db.list_user_exchanges()
    assert account.credentials == {
        "env": {"api_key": "CAROL_BINANCE_KEY", "api_secret": "CAROL_BINANCE_SECRET"}
    }
    assert account.is_default and account.exchange_id == 2


@pytest.mark.parametrize(
    ("argv", "stdin", "expected"),
    [
        (["--api-key-stdin"], "only-a-key-line\n", "first line"),
        (["--api-key-env", "A"], "", "go together"),
        ([], "", "either"),
        (["--api-key-stdin", "--api-key-env", "A", "--api-secret-env", "B"], "", "either"),
        (["--api-key-env", "A", "--api-secret-env", "not a name"], "", "not an environment"),
    ],
)
async def test_bad_credential_options_are_refused(
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    stdin: str,
    expected: str,
) -> None:
    assert await asyncio.to_thread(users.main, ["add", "--username", "dan"]) == 0
    code, out, err = await run_cli(
        ["user-exchanges", "add", "--user", "dan", "--exchange", "coinbase", *argv], capsys, stdin
    )
    assert code == 2 and expected in err
    assert "only-a-key-line" not in out + err
    async with Database(db_url) as db:
        assert await db.list_user_exchanges() == []


async def test_missing_key_unknown_user_and_exchange(
    db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await asyncio.to_thread(users.main, ["add", "--username", "eve"]) == 0
    base = ["user-exchanges", "add", "--api-key-stdin"]
    code, _, err = await run_cli([*base, "--user", "nobody", "--exchange", "coinbase"], capsys,
                                 f"k\n{ENV_SECRET}")  # fmt: skip
    assert code == 1 and "no user 'nobody'" in err
    code, _, err = await run_cli([*base, "--user", "eve", "--exchange", "kraken"], capsys,
                                 f"k\n{ENV_SECRET}")  # fmt: skip
    assert code == 1 and "unknown exchange" in err and ENV_SECRET not in err
    monkeypatch.delenv("LIVERMORE_SECRETS_KEY")
    code, _, err = await run_cli([*base, "--user", "eve", "--exchange", "coinbase"], capsys,
                                 f"k\n{ENV_SECRET}")  # fmt: skip
    assert code == 2 and "gen-key" in err and ENV_SECRET not in err


def test_gen_key_makes_a_usable_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert user_exchanges.main(["gen-key"]) == 0
    key = capsys.readouterr().out.strip()
    assert secrets.decrypt(secrets.encrypt("x", key), key) == "x"


async def test_a_plain_secret_cannot_reach_the_table_even_directly(db_url: str) -> None:
    async with Database(db_url) as db:
        user = await db.create_user("frank")
        with pytest.raises(ValueError) as info:
            await db.add_user_exchange(user.id, "coinbase", credentials={"api_secret": ENV_SECRET})
        assert ENV_SECRET not in str(info.value)
    conn = await asyncpg.connect(db_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM user_exchanges") == 0
    finally:
        await conn.close()
