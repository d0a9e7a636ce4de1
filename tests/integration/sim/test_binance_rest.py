"""Binance REST over HTTP: klines paging and limits, listings, errors, weight, faults, signing."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.sim.conftest import MakeSim
from tests.unit.sim.shapes import mismatches

MIN = 60_000

pytestmark = pytest.mark.integration


async def _klines(http: aiohttp.ClientSession, base: str, **params: Any) -> Any:
    resp = await http.get(f"{base}/api/v3/klines", params={k: str(v) for k, v in params.items()})
    return resp.status, await resp.json()


async def test_klines_default_limit_cap_order_and_forming_candle(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(speed=1.0, history_minutes=3000)
    status, rows = await _klines(http, sim.binance_url, symbol="BTCUSDT", interval="1m")
    assert status == 200 and len(rows) == 500
    starts = [r[0] for r in rows]
    assert starts == list(range(starts[0], starts[0] + 500 * MIN, MIN))  # oldest first, no gaps
    assert starts[-1] == sim.clock.now_ms() // MIN * MIN  # the forming kline is included
    assert all(r[6] == r[0] + MIN - 1 and r[11] == "0" for r in rows)
    _, many = await _klines(http, sim.binance_url, symbol="BTCUSDT", interval="1m", limit=5000)
    assert len(many) == 1000


async def test_klines_pages_agree(make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(speed=1.0, history_minutes=600)
    start = sim.clock.start_ms - 300 * MIN
    _, whole = await _klines(
        http, sim.binance_url, symbol="ETHUSDT", interval="1m", startTime=start, limit=200
    )
    _, page1 = await _klines(
        http, sim.binance_url, symbol="ETHUSDT", interval="1m", startTime=start, limit=100
    )
    _, page2 = await _klines(
        http,
        sim.binance_url,
        symbol="ETHUSDT",
        interval="1m",
        startTime=page1[-1][0] + MIN,
        endTime=start + 199 * MIN,
    )
    assert page1 + page2 == whole
    _, hourly = await _klines(
        http, sim.binance_url, symbol="ETHUSDT", interval="1h", startTime=start, limit=3
    )
    assert [r[0] % (60 * MIN) for r in hourly] == [0, 0, 0]
    # History is bounded: nothing before start - history_minutes.
    _, old = await _klines(
        http,
        sim.binance_url,
        symbol="ETHUSDT",
        interval="1m",
        startTime=start - 10_000 * MIN,
        endTime=start - 9_000 * MIN,
    )
    assert old == []


async def test_errors_match_the_venue(
    make_sim: MakeSim, http: aiohttp.ClientSession, fixtures_dir: Path
) -> None:
    sim = await make_sim()
    fixture = json.loads((fixtures_dir / "binance/rest_error_invalid_symbol.json").read_text())
    status, body = await _klines(http, sim.binance_url, symbol="NOPEUSDT", interval="1m")
    assert (status, body) == (400, fixture)
    status, body = await _klines(http, sim.binance_url, symbol="BTCUSDT", interval="7m")
    assert status == 400 and body["code"] == -1120
    status, body = await _klines(http, sim.binance_url, interval="1m")
    assert status == 400 and body["code"] == -1102


async def test_weight_header_and_limit(make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(binance_weight_limit_1m=6)
    used = []
    statuses = []
    for _ in range(5):
        resp = await http.get(f"{sim.binance_url}/api/v3/klines?symbol=BTCUSDT&interval=1m")
        used.append(int(resp.headers["X-MBX-USED-WEIGHT-1M"]))
        statuses.append(resp.status)
    assert used == sorted(used) and used[1] - used[0] == 2
    assert statuses[:3] == [200, 200, 200] and statuses[3] == 429
    assert int(resp.headers["Retry-After"]) >= 1


async def test_http_error_faults(
    make_sim: MakeSim, http: aiohttp.ClientSession, fixtures_dir: Path
) -> None:
    sim = await make_sim()
    fault = {"fault": "http_error", "exchange": "binance", "status": 429, "count": 2}
    resp = await http.post(f"{sim.binance_url}/_sim/faults", json={**fault, "retry_after": 3})
    assert resp.status == 200
    banned = json.loads((fixtures_dir / "binance/rest_error_418_ip_banned.json").read_text())
    for _ in range(2):
        resp = await http.get(f"{sim.binance_url}/api/v3/time")
        assert resp.status == 429 and resp.headers["Retry-After"] == "3"
        assert mismatches(await resp.json(), banned) == []
    assert (await http.get(f"{sim.binance_url}/api/v3/time")).status == 200
    sim.faults.http_error("binance", status=418, count=1, retry_after=60)
    resp = await http.get(f"{sim.binance_url}/api/v3/time")
    body = await resp.json()
    assert resp.status == 418 and "IP banned until" in body["msg"] and body["code"] == -1003


async def test_listings(make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(symbols=30)
    info = await (await http.get(f"{sim.binance_url}/api/v3/exchangeInfo")).json()
    assert len(info["symbols"]) == 30 and {s["status"] for s in info["symbols"]} == {"TRADING"}
    tickers = await (await http.get(f"{sim.binance_url}/api/v3/ticker/24hr")).json()
    volumes = {t["symbol"]: float(t["quoteVolume"]) for t in tickers}
    assert max(volumes, key=volumes.__getitem__) == "BTCUSDT"
    assert volumes["BTCUSDT"] > 100 * min(volumes.values())
    one = await (await http.get(f"{sim.binance_url}/api/v3/ticker/24hr?symbol=ETHUSDT")).json()
    assert one["symbol"] == "ETHUSDT"
    some = await http.get(
        f"{sim.binance_url}/api/v3/ticker/24hr", params={"symbols": '["BTCUSDT","ETHUSDT"]'}
    )
    assert [t["symbol"] for t in await some.json()] == ["BTCUSDT", "ETHUSDT"]
    server = (await (await http.get(f"{sim.binance_url}/api/v3/time")).json())["serverTime"]
    assert abs(server - sim.clock.now_ms()) < 60_000


async def test_signed_account(
    make_sim: MakeSim, http: aiohttp.ClientSession, fixtures_dir: Path
) -> None:
    vector = json.loads((fixtures_dir / "binance/hmac_sha256_test_vector.json").read_text())
    sim = await make_sim(
        speed=1.0, binance_api_key=vector["apiKey"], binance_api_secret=vector["secretKey"]
    )
    query = f"recvWindow=5000&timestamp={sim.clock.now_ms()}"
    sig = hmac.new(vector["secretKey"].encode(), query.encode(), hashlib.sha256).hexdigest()
    headers = {"X-MBX-APIKEY": vector["apiKey"]}
    url = f"{sim.binance_url}/api/v3/account"
    resp = await http.get(f"{url}?{query}&signature={sig}", headers=headers)
    assert resp.status == 200
    assert {b["asset"] for b in (await resp.json())["balances"]} >= {"BTC", "USDT"}
    resp = await http.get(f"{url}?{query}&signature={'0' * 64}", headers=headers)
    assert resp.status == 400 and (await resp.json())["code"] == -1022
    resp = await http.get(f"{url}?{query}&signature={sig}", headers={"X-MBX-APIKEY": "other"})
    assert resp.status == 401 and (await resp.json())["code"] == -2015
    stale = f"recvWindow=5000&timestamp={sim.clock.now_ms() - 60_000}"
    sig = hmac.new(vector["secretKey"].encode(), stale.encode(), hashlib.sha256).hexdigest()
    resp = await http.get(f"{url}?{stale}&signature={sig}", headers=headers)
    assert (await resp.json())["code"] == -1021
