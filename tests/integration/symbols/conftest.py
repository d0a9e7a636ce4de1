"""A simulated world for the symbol manager: the simulator, a migrated database pointed at it,
and accounts registered through the CLIs (Coinbase secret encrypted from stdin, Binance by env
variable names)."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from livermore_common import secrets
from livermore_common.config import CommonSettings, Secret
from livermore_common.db import Database
from livermore_common.keys import KeySpace
from livermore_common.migrate import migrate
from services.accounts import user_exchanges, users
from services.sim.config import SimConfig
from services.sim.server import Simulator
from services.symbols.config import SymbolSettings
from services.symbols.service import RowAdapters, SymbolManager

BINANCE_KEY = "sim-binance-api-key-0001"
BINANCE_SECRET = "sim-binance-hmac-secret-do-not-leak-4242"
COINBASE_KEY_NAME = "organizations/org-sim/apiKeys/key-sim"
WRONG_SECRET = "wrong-binance-secret-never-in-any-output-77"


def _pem_pair() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


async def cli(main: Any, argv: Sequence[str], stdin: str = "") -> int:
    """Run a CLI `main(argv)` as the shell would (in a thread: it calls asyncio.run)."""
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        return int(await asyncio.to_thread(main, list(argv)))
    finally:
        sys.stdin = saved


@dataclass
class World:
    sim: Simulator
    db: Database
    database_url: str
    redis: aioredis.Redis
    keys: KeySpace
    secrets_key: str
    coinbase_secret: str
    user_ids: dict[str, int]

    @property
    def secret_values(self) -> list[str]:
        """Every secret a test must never find in logs, Redis or outputs."""
        pem_body = self.coinbase_secret.splitlines()[1]
        return [BINANCE_SECRET, WRONG_SECRET, pem_body, self.secrets_key]

    def manager(self, **overrides: Any) -> SymbolManager:
        fields: dict[str, Any] = {
            "common": CommonSettings(database_url=self.database_url),
            "exchanges": ("coinbase", "binance"),
            "top_overrides": {"coinbase": 3, "binance": 2},
            "secrets_key": Secret(self.secrets_key),
        }
        fields.update(overrides)
        return SymbolManager(
            settings=SymbolSettings(**fields),
            db=self.db,
            redis=self.redis,
            keys=self.keys,
            adapter_factory=RowAdapters(),
            environ=dict(os.environ),
            instance_id="symbols-test",
        )

    async def venue_top(self, exchange: str, n: int) -> list[str]:
        """The top N by 24h quote volume read straight off the simulator's REST (the oracle)."""
        async with aiohttp.ClientSession() as http:
            if exchange == "binance":
                async with http.get(f"{self.sim.binance_url}/api/v3/ticker/24hr") as resp:
                    rows = [(float(t["quoteVolume"]), t["symbol"]) for t in await resp.json()]
            else:
                url = f"{self.sim.coinbase_url}/api/v3/brokerage/market/products"
                async with http.get(url) as resp:
                    body = await resp.json()
                rows = [
                    (float(p["approximate_quote_24h_volume"]), p["product_id"])
                    for p in body["products"]
                ]
        return [symbol for _, symbol in sorted(rows, key=lambda r: (-r[0], r[1]))[:n]]


@pytest.fixture
async def world(
    database_url: str,
    redis_client: aioredis.Redis,
    keyspace: KeySpace,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[World]:
    private, public = _pem_pair()
    config = SimConfig(
        symbols=30,
        coinbase_public_rps=0,
        binance_api_key=BINANCE_KEY,
        binance_api_secret=BINANCE_SECRET,
        coinbase_jwt_public_key=public,
    )
    key = secrets.generate_key()
    monkeypatch.setenv("LIVERMORE_DATABASE_URL", database_url)
    monkeypatch.setenv("LIVERMORE_SECRETS_KEY", key)
    monkeypatch.setenv("SIM_BINANCE_KEY", BINANCE_KEY)
    monkeypatch.setenv("SIM_BINANCE_SECRET", BINANCE_SECRET)
    monkeypatch.setenv("SIM_WRONG_SECRET", WRONG_SECRET)
    await migrate(database_url)
    async with Simulator(config) as sim, Database(database_url) as db:
        await db.set_exchange_endpoints("coinbase", sim.coinbase_ws_url, sim.coinbase_url)
        await db.set_exchange_endpoints("binance", sim.binance_ws_url, sim.binance_url)
        user_ids = await _register_accounts(db, private)
        yield World(sim, db, database_url, redis_client, keyspace, key, private, user_ids)


async def _register_accounts(db: Database, coinbase_pem: str) -> dict[str, int]:
    """ann: Coinbase (encrypted from stdin) and Binance (env names); bob: Binance; mallory:
    Binance with a wrong secret (her sync fails, nobody else's does)."""
    for name in ("ann", "bob", "mallory"):
        assert await cli(users.main, ["add", "--username", name]) == 0
    add = ["add", "--exchange"]
    stdin = f"{COINBASE_KEY_NAME}\n{coinbase_pem}"
    assert await cli(user_exchanges.main, [*add, "coinbase", "--user", "ann", "--api-key-stdin"],
                     stdin) == 0  # fmt: skip
    by_env = ["--api-key-env", "SIM_BINANCE_KEY", "--api-secret-env", "SIM_BINANCE_SECRET"]
    for name in ("ann", "bob"):
        assert await cli(user_exchanges.main, [*add, "binance", "--user", name, *by_env]) == 0
    wrong = ["--api-key-env", "SIM_BINANCE_KEY", "--api-secret-env", "SIM_WRONG_SECRET"]
    assert await cli(user_exchanges.main, [*add, "binance", "--user", "mallory", *wrong]) == 0
    ids = {}
    for name in ("ann", "bob", "mallory"):
        user = await db.get_user(name)
        assert user is not None
        ids[name] = user.id
    return ids
