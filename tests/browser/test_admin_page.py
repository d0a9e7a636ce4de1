"""The admin page in a real headless browser: sign in, start Coinbase, watch an alert, stop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from livermore_common import messages
from livermore_common.keys import KeySpace
from livermore_common.messages import SymbolEntry, SymbolList
from livermore_common.migrate import migrate
from tests.integration.gateway.support import (
    TOKEN,
    FakeIngestor,
    gateway_settings,
    now_ms,
    running_gateway,
    sample_alert,
)

pytestmark = [pytest.mark.browser, pytest.mark.integration]

TIMEOUT_MS = 15_000


async def _seed_symbols(database_url: str, redis: aioredis.Redis, keys: KeySpace) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO exchange_symbols (exchange_id, symbol, base, quote, volume_24h,"
            " volume_rank, tier) VALUES (1, 'BTC-USD', 'BTC', 'USD', 9e8, 1, 1)"
        )
    finally:
        await conn.close()
    merged = SymbolList(
        exchange_id=1,
        updated_at=now_ms(),
        symbols=(
            SymbolEntry(symbol="BTC-USD", tier=1, volume_rank=1),
            SymbolEntry(symbol="XLM-USD", tier=2, user_ids=(4,)),
        ),
    )
    await redis.set(keys.symbol_list_key(1), messages.encode(merged))


@pytest.fixture
async def gateway_url(
    redis_url: str,
    database_url: str,
    namespace: str,
    redis_client: aioredis.Redis,
    keyspace: KeySpace,
) -> AsyncIterator[str]:
    await migrate(database_url)
    await _seed_symbols(database_url, redis_client, keyspace)
    settings = gateway_settings(redis_url=redis_url, database_url=database_url, namespace=namespace)
    async with FakeIngestor(redis_client, keyspace), running_gateway(settings) as base_url:
        yield base_url


async def test_operator_starts_coinbase_sees_an_alert_and_stops_it(
    page: Any, gateway_url: str, redis_client: aioredis.Redis, keyspace: KeySpace
) -> None:
    from playwright.async_api import expect

    by = page.get_by_test_id
    await page.goto(gateway_url + "/")
    await by("token-input").fill(TOKEN)
    await by("login-submit").click()

    state = by("exchange-state-coinbase")
    await expect(state).to_have_text("idle", timeout=TIMEOUT_MS)
    await expect(by("feed-status")).to_have_attribute("data-state", "live", timeout=TIMEOUT_MS)

    # Symbols with their tier.
    await expect(by("symbol-coinbase-BTC-USD").get_by_test_id("symbol-tier")).to_have_attribute(
        "data-tier", "1"
    )
    await expect(by("symbol-coinbase-XLM-USD").get_by_test_id("symbol-tier")).to_have_attribute(
        "data-tier", "2"
    )

    await by("start-coinbase").click()
    await expect(state).to_have_text("connected", timeout=TIMEOUT_MS)
    await expect(by("instance-state-coinbase-fake-1")).to_have_text("connected")
    await expect(by("command-result-coinbase")).to_contain_text("success")
    await expect(by("lifecycle-list")).to_contain_text("exchange:connected")

    await redis_client.publish(keyspace.alerts_channel(1), sample_alert("browser-alert-1"))
    alert = page.locator('[data-testid="alert-item"][data-alert-id="browser-alert-1"]')
    await expect(alert).to_be_visible(timeout=TIMEOUT_MS)
    await expect(alert.get_by_test_id("alert-exchange")).to_have_text("coinbase")
    await expect(alert.get_by_test_id("alert-symbol")).to_have_text("BTC-USD")

    # A newer alert from another exchange goes on top.
    await redis_client.publish(
        keyspace.alerts_channel(2), sample_alert("browser-alert-2", 2, "binance")
    )
    first = by("alerts-list").get_by_test_id("alert-item").first
    await expect(first).to_have_attribute("data-alert-id", "browser-alert-2", timeout=TIMEOUT_MS)
    await expect(first.get_by_test_id("alert-exchange")).to_have_text("binance")

    await by("stop-coinbase").click()
    await expect(state).to_have_text("idle", timeout=TIMEOUT_MS)


async def test_a_wrong_token_is_refused_on_the_page(page: Any, gateway_url: str) -> None:
    from playwright.async_api import expect

    await page.goto(gateway_url + "/")
    await page.get_by_test_id("token-input").fill("definitely-not-the-token")
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("login-error")).to_contain_text("invalid token")
    await expect(page.get_by_test_id("exchanges")).to_be_hidden()
