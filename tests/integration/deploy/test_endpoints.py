"""`livermore up --live` after a simulator run: loopback rows go back to the public endpoints."""

from __future__ import annotations

import pytest

from livermore_common.db import Database
from livermore_common.migrate import migrate
from services.supervisor.endpoints import PUBLIC_ENDPOINTS, restore_public_endpoints

pytestmark = pytest.mark.integration


async def test_only_rows_left_on_loopback_are_restored(database_url: str) -> None:
    await migrate(database_url)
    async with Database(database_url, max_size=1) as db:
        seeded = {r.name: (r.ws_url, r.rest_url) for r in await db.list_exchanges()}
        assert seeded == PUBLIC_ENDPOINTS  # the constants are the seed's values
        assert await restore_public_endpoints(database_url) == []
        await db.set_exchange_endpoints("coinbase", "ws://127.0.0.1:4001", "http://127.0.0.1:4001")
        await db.set_exchange_endpoints("binance", "wss://proxy.example", "https://proxy.example")
        assert await restore_public_endpoints(database_url) == ["coinbase"]
        rows = {r.name: (r.ws_url, r.rest_url) for r in await db.list_exchanges()}
    assert rows["coinbase"] == PUBLIC_ENDPOINTS["coinbase"]
    assert rows["binance"] == ("wss://proxy.example", "https://proxy.example")  # left alone
