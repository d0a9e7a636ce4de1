"""Point a database's `exchanges` rows at a running simulator (plain SQL, no migrations)."""

from __future__ import annotations

import asyncpg

# exchanges.name -> which simulated venue serves it
SERVED_BY = {"coinbase": "coinbase", "binance": "binance", "binance_us": "binance"}


async def point_db(database_url: str, urls: dict[str, tuple[str, str]]) -> dict[str, int]:
    """Set ws_url/rest_url of each served row; `urls` maps venue -> (ws_url, rest_url).
    Returns the number of rows updated per exchange name (0 when the row does not exist)."""
    conn = await asyncpg.connect(database_url)
    try:
        updated = {}
        for name, venue in SERVED_BY.items():
            ws_url, rest_url = urls[venue]
            status = await conn.execute(
                "UPDATE exchanges SET ws_url = $1, rest_url = $2 WHERE name = $3",
                ws_url,
                rest_url,
                name,
            )
            updated[name] = int(status.split()[-1])
        return updated
    finally:
        await conn.close()
