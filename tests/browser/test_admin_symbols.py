"""The admin page's "Refresh symbols" button: the gateway relays a signed `refresh-symbols` to a
real symbol manager, which reads the simulator's 24h volumes; the page shows its counts and the
new Tier 1 list."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from livermore_common import messages
from livermore_common.config import CommonSettings
from livermore_common.db import Database
from livermore_common.keys import KeySpace
from livermore_common.messages import SymbolList
from services.symbols.commands import RefreshCommands
from services.symbols.config import SymbolSettings
from services.symbols.service import RowAdapters, SymbolManager
from tests.helpers import eventually
from tests.integration.gateway.support import (
    CONTROL_SECRET,
    TOKEN,
    gateway_settings,
    running_gateway,
)
from tests.integration.ingestor.conftest import pointed_db, sim  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.integration]

TIMEOUT_MS = 20_000
TOP = 3


@pytest.fixture
async def gateway_with_manager(
    pointed_db: Database,  # noqa: F811
    redis_client: aioredis.Redis,
    keyspace: KeySpace,
    redis_url: str,
    database_url: str,
    namespace: str,
) -> AsyncIterator[str]:
    manager = SymbolManager(
        settings=SymbolSettings(
            common=CommonSettings(database_url=database_url),
            exchanges=("coinbase",),
            top_overrides={"coinbase": TOP},
        ),
        db=pointed_db,
        redis=redis_client,
        keys=keyspace,
        adapter_factory=RowAdapters(),
        environ=dict(os.environ),
        instance_id="symbols-page-test",
    )
    stop = asyncio.Event()
    listener = asyncio.create_task(RefreshCommands(manager, CONTROL_SECRET).run(stop))
    settings = gateway_settings(
        redis_url=redis_url, database_url=database_url, namespace=namespace, command_timeout=20.0
    )
    try:

        async def listening() -> bool:
            return bool((await redis_client.pubsub_numsub(keyspace.control_channel))[0][1])

        await eventually(listening, 10)
        async with running_gateway(settings) as base_url:
            yield base_url
    finally:
        stop.set()
        await asyncio.wait_for(listener, 30)


async def test_refresh_symbols_button_updates_the_tier_1_list(
    page: Any,
    gateway_with_manager: str,
    redis_client: aioredis.Redis,
    keyspace: KeySpace,
) -> None:
    from playwright.async_api import expect

    by = page.get_by_test_id
    await page.goto(gateway_with_manager + "/")
    await by("token-input").fill(TOKEN)
    await by("login-submit").click()
    await expect(by("symbols-coinbase")).to_contain_text("No symbols", timeout=TIMEOUT_MS)

    await by("refresh-symbols-coinbase").click()
    result = by("command-result-coinbase")
    await expect(result).to_contain_text(
        f"refresh-symbols: success (coinbase: {TOP} tier 1, 0 tier 2)", timeout=TIMEOUT_MS
    )
    # The page now lists what the manager serves: the merged list's symbols, as Tier 1.
    raw = await redis_client.get(keyspace.symbol_list_key(1))
    served = [entry.symbol for entry in messages.decode(raw, SymbolList).symbols]
    assert len(served) == TOP
    tiers = by("symbols-coinbase").get_by_test_id("symbol-tier")
    await expect(tiers).to_have_count(TOP, timeout=TIMEOUT_MS)
    await expect(tiers).to_have_text(["1 · shared"] * TOP)
    for symbol in served:
        await expect(by(f"symbol-coinbase-{symbol}")).to_be_visible()
