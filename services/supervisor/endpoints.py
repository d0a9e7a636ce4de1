"""The seeded exchanges' public endpoints, restored by `livermore up --live` after a simulator run.

The simulator points the `exchanges` rows at itself and nothing points them back; a live run
that found them on a loopback address would connect to nothing.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from livermore_common.db import Database

# The values the seed migration (20250110090000_exchanges.sql) writes.
PUBLIC_ENDPOINTS: dict[str, tuple[str, str]] = {
    "coinbase": ("wss://advanced-trade-ws.coinbase.com", "https://api.coinbase.com"),
    "binance": ("wss://stream.binance.com:9443", "https://api.binance.com"),
    "binance_us": ("wss://stream.binance.us:9443", "https://api.binance.us"),
}
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def on_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in _LOOPBACK


async def restore_public_endpoints(database_url: str) -> list[str]:
    """Point every seeded exchange whose row is on a loopback address back at its public
    endpoints; returns the names changed."""
    changed = []
    async with Database(database_url, max_size=1) as db:
        for row in await db.list_exchanges():
            public = PUBLIC_ENDPOINTS.get(row.name)
            if public and (on_loopback(row.ws_url) or on_loopback(row.rest_url)):
                await db.set_exchange_endpoints(row.name, *public)
                changed.append(row.name)
    return changed
