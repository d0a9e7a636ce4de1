"""`livermore user-exchanges add|list|gen-key`: users' exchange accounts, secrets never in argv.

add --user U --exchange NAME --api-key-env VAR --api-secret-env VAR
    stores the *names* of the variables (the services read them at run time)
add --user U --exchange NAME --api-key-stdin
    reads the API key (first line) and secret (the rest: a PEM may span lines) from stdin, or
    prompts without echo on a terminal, and stores both encrypted with LIVERMORE_SECRETS_KEY
list [--user U] [--exchange NAME]    how each account's credentials are stored, no values
gen-key                               prints a new LIVERMORE_SECRETS_KEY
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

import asyncpg
import msgspec

from livermore_common.config import ConfigError, Secret
from livermore_common.db import Database
from livermore_common.errors import UnknownExchangeError
from livermore_common.secrets import (
    CredentialsError,
    describe_credentials,
    encrypted_credentials,
    env_credentials,
    generate_key,
    load_key,
)

from .common import database_url, fail, find_user, table

PROG = "livermore user-exchanges"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="register users' exchange accounts (secrets come from stdin or environment "
        "variables, never from arguments)",
    )
    parser.add_argument("--database-url", help="default: LIVERMORE_DATABASE_URL")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = sub.add_parser("add", help="register an account on an exchange")
    add.add_argument("--user", required=True, help="username (or id)")
    add.add_argument("--exchange", required=True, help="exchanges.name, e.g. coinbase")
    add.add_argument("--display-name")
    add.add_argument("--default", action="store_true", help="make it the user's default account")
    add.add_argument("--api-key-env", metavar="VAR", help="variable holding the API key")
    add.add_argument("--api-secret-env", metavar="VAR", help="variable holding the API secret")
    add.add_argument(
        "--api-key-stdin",
        action="store_true",
        help="read key (first line) and secret (rest) from stdin; stored encrypted",
    )
    listing = sub.add_parser("list", help="list accounts (never their secrets)")
    listing.add_argument("--user", help="username (or id)")
    listing.add_argument("--exchange", help="exchanges.name")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    sub.add_parser("gen-key", help="print a new key for LIVERMORE_SECRETS_KEY")
    return parser


def read_stdin_credentials(stdin: TextIO) -> tuple[str, Secret]:
    """The API key and secret from stdin: prompted without echo on a terminal, else the first
    line is the key and the rest the secret. Errors never quote what was read."""
    if stdin.isatty():
        api_key = getpass.getpass("API key: ").strip()
        # A PEM typed or pasted on one line keeps its line breaks as literal \n.
        api_secret = getpass.getpass("API secret: ").strip().replace("\\n", "\n")
    else:
        api_key, _, rest = stdin.read().partition("\n")
        api_key, api_secret = api_key.strip(), rest.strip()
    if not api_key or not api_secret:
        raise CredentialsError("stdin must hold the API key on the first line, then the secret")
    return api_key, Secret(api_secret)


def credentials_from_args(
    args: argparse.Namespace, environ: Mapping[str, str], stdin: TextIO
) -> dict[str, dict[str, str]]:
    by_env = args.api_key_env or args.api_secret_env
    if bool(by_env) == bool(args.api_key_stdin):
        raise CredentialsError(
            "give either --api-key-env VAR --api-secret-env VAR or --api-key-stdin"
        )
    if by_env:
        if not (args.api_key_env and args.api_secret_env):
            raise CredentialsError("--api-key-env and --api-secret-env go together")
        return env_credentials({"api_key": args.api_key_env, "api_secret": args.api_secret_env})
    key = load_key(environ)
    if not key:
        raise CredentialsError(
            "LIVERMORE_SECRETS_KEY is not set; create one with `livermore user-exchanges gen-key`"
        )
    api_key, api_secret = read_stdin_credentials(stdin)
    return encrypted_credentials({"api_key": api_key, "api_secret": api_secret}, key)


async def _add(
    db: Database, args: argparse.Namespace, credentials: dict[str, dict[str, str]]
) -> int:
    user = await find_user(db, args.user)
    if user is None:
        return fail(PROG, f"no user {args.user!r} (create it with `livermore users add`)")
    row = await db.add_user_exchange(
        user.id,
        args.exchange,
        credentials=credentials,
        display_name=args.display_name,
        is_default=args.default,
    )
    print(
        f"registered account {row.id}: user {user.username} on {row.exchange_name} "
        f"({describe_credentials(row.credentials)})"
    )
    return 0


async def _list(db: Database, args: argparse.Namespace) -> int:
    user_id = exchange_id = None
    if args.user:
        user = await find_user(db, args.user)
        if user is None:
            return fail(PROG, f"no user {args.user!r}")
        user_id = user.id
    if args.exchange:
        exchange_id = (await db.get_exchange(args.exchange)).id
    accounts = await db.list_user_exchanges(
        user_id=user_id, exchange_id=exchange_id, active_only=False
    )
    names = {u.id: u.username for u in await db.list_users()}
    rows = [
        (a.id, names.get(a.user_id, a.user_id), a.exchange_name, a.display_name,
         describe_credentials(a.credentials), a.is_default, a.is_active)
        for a in accounts
    ]  # fmt: skip
    headers = ("ID", "USER", "EXCHANGE", "DISPLAY NAME", "CREDENTIALS", "DEFAULT", "ACTIVE")
    if args.json:
        keys = [h.lower().replace(" ", "_") for h in headers]
        for row in rows:
            print(msgspec.json.encode(dict(zip(keys, row, strict=True))).decode())
    else:
        table(headers, rows, sys.stdout)
    return 0


async def run(args: argparse.Namespace, environ: Mapping[str, str], stdin: TextIO) -> int:
    # Read and encrypt the secret before connecting: nothing plain is held longer than needed.
    credentials = credentials_from_args(args, environ, stdin) if args.command == "add" else {}
    async with Database(database_url(args.database_url, environ), max_size=1) as db:
        if args.command == "add":
            return await _add(db, args, credentials)
        return await _list(db, args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.command == "gen-key":
        print(generate_key())
        return 0
    try:
        return asyncio.run(run(args, os.environ, sys.stdin))
    except (ConfigError, CredentialsError) as exc:
        return fail(PROG, str(exc), code=2)
    except UnknownExchangeError as exc:
        return fail(PROG, str(exc))
    except (OSError, asyncpg.PostgresError) as exc:
        # asyncpg errors quote statements, never bound parameters (where ciphertext travels).
        return fail(PROG, f"database error: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    raise SystemExit(main())
