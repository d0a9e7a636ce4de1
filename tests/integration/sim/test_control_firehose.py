"""The control API (status, faults, truth), the firehose, and `livermore sim --point-db`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from services.sim.firehose import ws_frame
from tests.integration.sim.conftest import MakeSim

ROOT = Path(__file__).resolve().parents[3]
MIN = 60_000

pytestmark = pytest.mark.integration


async def test_status_and_fault_validation(make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim()
    status = await (await http.get(f"{sim.coinbase_url}/_sim/status")).json()
    assert status["urls"] == {"binance": sim.binance_url, "coinbase": sim.coinbase_url}
    assert status["symbols"]["binance"][0] == "BTCUSDT"
    for bad in ({"fault": "explode"}, {"fault": "malformed", "kind": "weird"}, ["drop"]):
        resp = await http.post(f"{sim.binance_url}/_sim/faults", json=bad)
        assert resp.status == 400 and "error" in await resp.json()
    resp = await http.post(
        f"{sim.binance_url}/_sim/faults", json={"fault": "stall", "exchange": "coinbase"}
    )
    assert resp.status == 200
    faults = await (await http.get(f"{sim.binance_url}/_sim/faults")).json()
    assert faults["stalled"]["coinbase"] > 0 and faults["stalled"]["binance"] == 0


async def test_truth_endpoint_matches_what_rest_served(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(speed=1.0)
    start = sim.clock.start_ms - 30 * MIN
    resp = await http.get(
        f"{sim.binance_url}/api/v3/klines",
        params={"symbol": "SOLUSDT", "interval": "5m", "startTime": str(start), "limit": "6"},
    )
    rows = await resp.json()
    query = {"exchange": "binance", "symbol": "SOLUSDT", "timeframe": "5m"}
    truth = await (await http.get(f"{sim.coinbase_url}/_sim/truth", params=query)).json()
    served = [(c["timestamp"], c["close"], c["volume"]) for c in truth["candles"]]
    closed = [
        (r[0], float(r[4]), float(r[5])) for r in rows if r[0] + 5 * MIN <= sim.clock.now_ms()
    ]
    assert served == closed and served
    expected = await (
        await http.get(f"{sim.coinbase_url}/_sim/truth", params={**query, "expected": "1"})
    ).json()
    recomputed = {c["timestamp"]: (c["close"], c["volume"]) for c in expected["candles"]}
    assert all(recomputed[t] == (c, v) for t, c, v in served)
    resp = await http.get(f"{sim.coinbase_url}/_sim/truth", params={**query, "symbol": "NOPE"})
    assert resp.status == 400


def test_ws_frame_header_lengths() -> None:
    assert ws_frame(b"x")[:2] == bytes((0x81, 1))
    assert ws_frame(b"x" * 200)[:4] == bytes((0x81, 126, 0, 200))
    assert ws_frame(b"x" * 70_000)[:2] == bytes((0x81, 127))


async def test_firehose_sends_partials_and_finals_that_rest_confirms(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(firehose=True, firehose_minutes=3, speed=1.0, symbols=5)
    names = [f"{s.name.lower()}@kline_1m" for s in sim.markets["binance"].symbols]
    frames = []
    async with http.ws_connect(f"{sim.binance_ws_url}/stream?streams={'/'.join(names)}") as ws:
        while len(frames) < 5 * 4 * 5:  # five minutes: three prepared, two rendered live
            frames.append(json.loads((await ws.receive(timeout=10)).data)["data"]["k"])
    by_stream: dict[str, list[bool]] = {}
    for k in frames:
        by_stream.setdefault(k["s"], []).append(k["x"])
    assert all(xs == [False, False, False, True] * 5 for xs in by_stream.values())
    final = next(k for k in reversed(frames) if k["x"] and k["s"] == "ETHUSDT")
    resp = await http.get(
        f"{sim.binance_url}/api/v3/klines",
        params={"symbol": "ETHUSDT", "interval": "1m", "startTime": str(final["t"]), "limit": "1"},
    )
    row = (await resp.json())[0]
    assert row[1:6] == [final["o"], final["h"], final["l"], final["c"], final["v"]]
    assert sim.clock.now_ms() > final["T"]  # the clock was pushed past what was sent
    assert final["t"] in sim.truth.served("binance", "ETHUSDT", "1m")


async def test_cli_points_the_database_at_itself(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "CREATE TABLE exchanges (id int PRIMARY KEY, name text UNIQUE, ws_url text,"
            " rest_url text)"
        )
        await conn.execute(
            "INSERT INTO exchanges VALUES (1, 'coinbase', 'wss://a', 'https://a'),"
            " (2, 'binance', 'wss://b', 'https://b'), (3, 'binance_us', 'wss://c', 'https://c')"
        )
    finally:
        await conn.close()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.sim",
        "--symbols",
        "3",
        "--point-db",
        database_url,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        fields = dict(part.split("=", 1) for part in line.split()[2:])
        assert line.startswith("sim ready ") and set(fields) == {"coinbase", "binance"}
        conn = await asyncpg.connect(database_url)
        try:
            rows = {
                r["name"]: (r["ws_url"], r["rest_url"])
                for r in await conn.fetch("SELECT name, ws_url, rest_url FROM exchanges")
            }
        finally:
            await conn.close()
        ws = {k: v.replace("http://", "ws://") for k, v in fields.items()}
        assert rows == {
            "coinbase": (ws["coinbase"], fields["coinbase"]),
            "binance": (ws["binance"], fields["binance"]),
            "binance_us": (ws["binance"], fields["binance"]),
        }
        async with aiohttp.ClientSession() as http:
            resp = await http.get(f"{fields['binance']}/api/v3/time")
            assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
