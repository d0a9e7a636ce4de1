"""Coinbase over real sockets: sequence numbers, heartbeats, trades and candles that agree with
REST, subscription rules, JWT-guarded accounts, REST limits and faults."""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections import defaultdict
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.helpers import eventually
from tests.integration.sim.conftest import MakeSim

MIN = 60_000

pytestmark = pytest.mark.integration


async def _json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> Any:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def _subscribe(ws: aiohttp.ClientWebSocketResponse, channel: str, *products: str) -> None:
    body: dict[str, Any] = {"type": "subscribe", "channel": channel}
    if products:
        body["product_ids"] = list(products)
    await ws.send_json(body)


async def _rest_candles(
    http: aiohttp.ClientSession, base: str, product: str, start_ms: int, end_ms: int, gran: str
) -> Any:
    resp = await http.get(
        f"{base}/api/v3/brokerage/market/products/{product}/candles",
        params={"start": str(start_ms // 1000), "end": str(end_ms // 1000), "granularity": gran},
    )
    return resp.status, await resp.json()


async def test_sequence_numbers_heartbeats_and_acks(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    async with http.ws_connect(sim.coinbase_ws_url) as ws:
        await _subscribe(ws, "heartbeats")
        await _subscribe(ws, "candles", "BTC-USD")
        messages = [await _json(ws) for _ in range(12)]
    assert [m["sequence_num"] for m in messages] == list(range(12))
    acks = [m for m in messages if m["channel"] == "subscriptions"]
    assert acks[-1]["events"][0]["subscriptions"] == {"heartbeats": [], "candles": ["BTC-USD"]}
    beats = [m["events"][0] for m in messages if m["channel"] == "heartbeats"]
    counters = [b["heartbeat_counter"] for b in beats]
    assert counters == list(range(counters[0], counters[0] + len(counters))) and counters
    assert all(" +0000 UTC m=+" in b["current_time"] for b in beats)
    assert all(m["client_id"] == "" and m["timestamp"].endswith("Z") for m in messages)


async def test_sequence_skip_fault_leaves_a_gap(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    async with http.ws_connect(sim.coinbase_ws_url) as ws:
        await _subscribe(ws, "heartbeats")
        first = await _json(ws)
        resp = await http.post(
            f"{sim.coinbase_url}/_sim/faults", json={"fault": "sequence_skip", "count": 3}
        )
        assert (await resp.json())["connections"] == 1
        seqs = [first["sequence_num"]] + [(await _json(ws))["sequence_num"] for _ in range(3)]
    gaps = [b - a for a, b in itertools.pairwise(seqs)]
    assert sorted(gaps) == [1, 1, 4]


async def test_stall_sends_nothing_and_the_loss_shows_as_a_sequence_gap(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    async with http.ws_connect(sim.coinbase_ws_url) as ws:
        await _subscribe(ws, "heartbeats")
        await _json(ws)  # the acknowledgement
        before = (await _json(ws))["sequence_num"]
        sim.faults.stall("coinbase", seconds=0.6)
        seqs = [before]
        while True:  # drain what was already queued when the stall began
            try:
                seqs.append((await _json(ws, timeout=0.3))["sequence_num"])
            except TimeoutError:
                break
        assert sim.faults.is_stalled("coinbase")  # silence: nothing came for 0.3 s
        after = (await _json(ws, timeout=3.0))["sequence_num"]
    assert not sim.faults.is_stalled("coinbase")
    # The heartbeats the stall swallowed consumed sequence numbers: the client sees the loss.
    assert after > seqs[-1] + 1, (seqs, after)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


async def test_one_minute_candles_from_trades_equal_rest_and_truth(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    trades: dict[int, list[dict[str, str]]] = defaultdict(list)
    async with http.ws_connect(sim.coinbase_ws_url) as ws:
        await _subscribe(ws, "market_trades", "ETH-USD")
        subscribed = sim.clock.now_ms()
        while len(trades) < 6:
            msg = await _json(ws)
            if msg["channel"] != "market_trades" or msg["events"][0]["type"] != "update":
                continue
            for t in msg["events"][0]["trades"]:
                ms = _epoch_ms(t["time"])
                trades[ms - ms % MIN].append(t)
    # Minutes that began after the subscription and have ended (the last key is still open).
    full = [m for m in sorted(trades)[:-1] if m >= subscribed][:3]
    assert len(full) == 3
    status, body = await _rest_candles(
        http, sim.coinbase_url, "ETH-USD", full[0], full[-1] + MIN, "ONE_MINUTE"
    )
    assert status == 200
    rest = {int(c["start"]) * 1000: c for c in body["candles"]}
    for minute in full:
        ts = trades[minute]
        prices = [Decimal(t["price"]) for t in ts]
        built = (
            prices[0],
            max(prices),
            min(prices),
            prices[-1],
            sum(Decimal(t["size"]) for t in ts),
        )
        c = rest[minute]
        assert built == tuple(Decimal(c[k]) for k in ("open", "high", "low", "close", "volume"))
    served = sim.truth.served("coinbase", "ETH-USD", "1m")
    assert set(full) <= set(served)


def _epoch_ms(text: str) -> int:
    whole, _, frac = text.rstrip("Z").partition(".")
    return int(time.mktime(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) - time.timezone) * 1000 + int(
        (frac + "000")[:3]
    )


async def test_candles_channel_last_update_of_a_bucket_equals_rest(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(speed=3000.0)
    latest: dict[str, dict[str, str]] = {}
    closed: list[dict[str, str]] = []
    async with http.ws_connect(sim.coinbase_ws_url) as ws:
        await _subscribe(ws, "candles", "BTC-USD")
        while len(closed) < 2:
            msg = await _json(ws)
            if msg["channel"] != "candles":
                continue
            for c in msg["events"][0]["candles"]:
                if latest and c["start"] > max(latest):
                    closed.append(latest[max(latest)])
                latest[c["start"]] = c
    bucket = closed[-1]
    start = int(bucket["start"]) * 1000
    _, body = await _rest_candles(
        http, sim.coinbase_url, "BTC-USD", start, start + 5 * MIN, "FIVE_MINUTE"
    )
    rest = body["candles"][0]
    assert {k: v for k, v in bucket.items() if k != "product_id"} == rest


async def test_subscription_rules(make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(coinbase_subscribe_timeout_s=0.2)
    async with http.ws_connect(sim.coinbase_ws_url) as ws:
        msg = await ws.receive(timeout=5)  # nothing subscribed: the venue hangs up
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    async with http.ws_connect(sim.coinbase_ws_url) as ws:
        await _subscribe(ws, "candles", "NOPE-USD")
        assert (await _json(ws))["type"] == "error"
        await _subscribe(ws, "level2", "BTC-USD")
        assert (await _json(ws))["type"] == "error"


def _jwt(key: ec.EllipticCurvePrivateKey, claims: dict[str, Any]) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "ES256", "kid": "organizations/o/apiKeys/k"}).encode())
    body = b64(json.dumps(claims).encode())
    r, s = decode_dss_signature(key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256())))
    return f"{head}.{body}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


async def test_accounts_need_a_valid_jwt(make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    sim = await make_sim(coinbase_jwt_public_key=pem)
    url = f"{sim.coinbase_url}/api/v3/brokerage/accounts"
    assert (await http.get(url)).status == 401
    claims = {"iss": "cdp", "sub": "k", "nbf": int(time.time()), "exp": int(time.time()) + 120}
    other = ec.generate_private_key(ec.SECP256R1())
    bad = await http.get(url, headers={"Authorization": f"Bearer {_jwt(other, claims)}"})
    assert bad.status == 401
    good = await http.get(url, headers={"Authorization": f"Bearer {_jwt(key, claims)}"})
    assert good.status == 200
    body = await good.json()
    assert body["size"] == len(body["accounts"]) and body["accounts"][0]["currency"] == "BTC"


async def test_rest_candles_limits_and_order(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(speed=1.0)
    now = sim.clock.now_ms()
    status, body = await _rest_candles(
        http, sim.coinbase_url, "BTC-USD", now - 300 * MIN, now, "ONE_MINUTE"
    )
    starts = [int(c["start"]) for c in body["candles"]]
    assert status == 200 and starts == sorted(starts, reverse=True) and len(starts) <= 300
    status, body = await _rest_candles(
        http, sim.coinbase_url, "BTC-USD", now - 400 * MIN, now, "ONE_MINUTE"
    )
    assert status == 400 and body["error"] == "INVALID_ARGUMENT"
    assert "number of candles requested should be less than 350" in body["message"]
    status, body = await _rest_candles(http, sim.coinbase_url, "BTC-USD", now - MIN, now, "1m")
    assert status == 400


async def test_products_time_rate_limit_and_429_fault(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(symbols=20, coinbase_public_rps=3)
    base = f"{sim.coinbase_url}/api/v3/brokerage"
    body = await (await http.get(f"{base}/market/products")).json()
    assert body["num_products"] == 20
    volumes = [float(p["approximate_quote_24h_volume"]) for p in body["products"]]
    assert volumes[0] == max(volumes) and body["products"][0]["product_id"] == "BTC-USD"
    clock = await (await http.get(f"{base}/time")).json()
    assert abs(int(clock["epochMillis"]) - sim.clock.now_ms()) < 60_000
    sim.faults.http_error("coinbase", status=429, count=1, retry_after=2)
    resp = await http.get(f"{base}/time")
    assert resp.status == 429 and resp.headers["Retry-After"] == "2"
    statuses = [(await http.get(f"{base}/time")).status for _ in range(20)]
    assert 429 in statuses  # the public limit (3/s here) holds


async def test_drop_fault_closes_coinbase_sockets(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    async with http.ws_connect(sim.coinbase_ws_url) as ws:
        await _subscribe(ws, "heartbeats")
        await _json(ws)
        await eventually(lambda: sim.coinbase_feed.connections)
        resp = await http.post(f"{sim.coinbase_url}/_sim/faults", json={"fault": "drop"})
        assert (await resp.json())["connections"] >= 1
        while True:
            msg = await ws.receive(timeout=5)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
        assert msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.ERROR,
        )
