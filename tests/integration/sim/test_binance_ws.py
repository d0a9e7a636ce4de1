"""Binance streams over a real socket: partial updates then the final kline, live commands,
limits, pings, and the WebSocket faults."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.helpers import eventually
from tests.integration.sim.conftest import MakeSim

pytestmark = pytest.mark.integration


async def _json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> Any:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def _closed(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> bool:
    """True once the server has ended the connection (frames still queued are skipped)."""
    while True:
        msg = await ws.receive(timeout=timeout)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return True


async def test_three_partials_then_final_equal_to_rest_and_truth(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(speed=60.0)  # a phase every 250 ms real: none coalesce under load
    url = f"{sim.binance_ws_url}/stream?streams=btcusdt@kline_1m"
    frames: list[dict[str, Any]] = []
    async with http.ws_connect(url) as ws:
        finals = 0
        while finals < 2:
            frame = await _json(ws)
            assert frame["stream"] == "btcusdt@kline_1m"
            frames.append(frame["data"])
            finals += frame["data"]["k"]["x"]
    first_final = next(i for i, f in enumerate(frames) if f["k"]["x"])
    last = frames[first_final + 1 :]
    assert [f["k"]["x"] for f in last] == [False, False, False, True]
    assert len({f["k"]["t"] for f in last}) == 1
    kline = last[-1]["k"]
    assert last[-1]["E"] > kline["T"]  # the final goes out after the close
    resp = await http.get(
        f"{sim.binance_url}/api/v3/klines",
        params={"symbol": "BTCUSDT", "interval": "1m", "startTime": kline["t"], "limit": 1},
    )
    row = (await resp.json())[0]
    assert row[:9] == [
        kline["t"],
        kline["o"],
        kline["h"],
        kline["l"],
        kline["c"],
        kline["v"],
        kline["T"],
        kline["q"],
        kline["n"],
    ]
    truth = sim.truth.candles("binance", "BTCUSDT", "1m", kline["t"], kline["t"] + 1)
    assert [(c.open, c.close, c.volume) for c in truth] == [
        (float(kline["o"]), float(kline["c"]), float(kline["v"]))
    ]


async def test_five_minute_stream_closes_on_its_boundary(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(speed=3000.0)
    async with http.ws_connect(f"{sim.binance_ws_url}/stream?streams=ethusdt@kline_5m") as ws:
        frame = await _json(ws)
        while not frame["data"]["k"]["x"]:
            frame = await _json(ws)
    k = frame["data"]["k"]
    assert k["i"] == "5m" and k["t"] % 300_000 == 0 and k["T"] == k["t"] + 299_999


async def test_raw_stream_and_live_commands(make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim()
    async with http.ws_connect(f"{sim.binance_ws_url}/ws") as ws:
        await ws.send_json({"method": "SUBSCRIBE", "params": ["ethusdt@kline_1m"], "id": 1})
        assert await _json(ws) == {"result": None, "id": 1}
        await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 2})
        assert await _json(ws) == {"result": ["ethusdt@kline_1m"], "id": 2}
        event = await _json(ws)
        assert event["e"] == "kline" and event["s"] == "ETHUSDT"  # raw: no wrapper
        await ws.send_json({"method": "GET_PROPERTY", "params": ["combined"], "id": 3})
        reply = await _json(ws)
        while "id" not in reply:
            reply = await _json(ws)
        assert reply == {"result": False, "id": 3}


async def test_too_many_subscriptions(make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(binance_max_streams=2)
    url = f"{sim.binance_ws_url}/stream?streams=btcusdt@kline_1m/ethusdt@kline_1m"
    async with http.ws_connect(url) as ws:
        await ws.send_json({"method": "SUBSCRIBE", "params": ["solusdt@kline_1m"], "id": 19})
        reply = await _json(ws)
        while "id" not in reply:
            reply = await _json(ws)
        assert reply == {"error": {"code": 4, "msg": "Too many subscriptions"}, "id": 19}


async def test_more_than_five_messages_a_second_disconnects(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    async with http.ws_connect(f"{sim.binance_ws_url}/stream") as ws:
        for i in range(8):
            await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": i})
        assert await _closed(ws)


async def test_server_pings_and_drops_a_client_that_never_pongs(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(binance_ping_interval_s=0.05, binance_pong_timeout_s=0.2)
    async with http.ws_connect(f"{sim.binance_ws_url}/stream", autoping=False) as ws:
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.PING
        assert await _closed(ws)


async def test_a_client_that_pongs_stays_connected(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    # Pongs count toward the 5 messages/s limit, as on the venue: ping at most 4 times a second.
    sim = await make_sim(binance_ping_interval_s=0.25, binance_pong_timeout_s=0.6)
    async with http.ws_connect(f"{sim.binance_ws_url}/stream?streams=btcusdt@kline_1m") as ws:
        finals = 0
        while finals < 20:  # two seconds, several pong timeouts long, at speed 600
            finals += (await _json(ws))["data"]["k"]["x"]
        assert not ws.closed


async def test_server_shutdown_event_then_disconnect(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    async with http.ws_connect(f"{sim.binance_ws_url}/stream?streams=btcusdt@kline_1m") as ws:
        await eventually(lambda: sim.binance_streams.connections)
        resp = await http.post(
            f"{sim.binance_url}/_sim/faults", json={"fault": "server_shutdown", "after_s": 0.2}
        )
        assert (await resp.json())["connections"] == 1
        frame = await _json(ws)
        while frame["stream"] != "!serverShutdown":
            frame = await _json(ws)
        assert frame["data"]["e"] == "serverShutdown"
        assert await _closed(ws)


async def test_drop_closes_abruptly(make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim()
    async with http.ws_connect(f"{sim.binance_ws_url}/stream?streams=btcusdt@kline_1m") as ws:
        await eventually(lambda: sim.binance_streams.connections)
        assert sim.faults.drop("binance") == 1
        assert await _closed(ws)


@pytest.mark.parametrize("kind", ["bad_json", "wrong_types", "nan", "negative_price", "huge"])
async def test_malformed_frames_are_injected(
    make_sim: MakeSim, http: aiohttp.ClientSession, kind: str
) -> None:
    sim = await make_sim(speed=1.0)  # no regular frames in the way
    url = f"{sim.binance_ws_url}/stream?streams=btcusdt@kline_1m"
    async with http.ws_connect(url, max_msg_size=8 << 20) as ws:
        await eventually(lambda: sim.binance_streams.connections)
        sim.faults.malformed("binance", kind)
        msg = await ws.receive(timeout=5)
    text = msg.data
    if kind == "bad_json":
        with pytest.raises(ValueError):
            json.loads(text)
        return
    data = json.loads(text)["data"]
    if kind == "wrong_types":
        assert isinstance(data["k"]["t"], str)
    elif kind == "nan":
        assert data["k"]["c"] == "NaN"
    elif kind == "negative_price":
        assert float(data["k"]["o"]) < 0
    else:
        assert len(text) > 2 << 20


async def test_stall_sends_nothing_then_resumes(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    async with http.ws_connect(f"{sim.binance_ws_url}/stream?streams=btcusdt@kline_1m") as ws:
        await _json(ws)
        sim.faults.stall("binance", seconds=1.0)
        while True:  # drain what was already queued before the stall began
            try:
                await ws.receive(timeout=0.2)
            except TimeoutError:
                break
        assert sim.faults.is_stalled("binance")
        frame = await _json(ws, timeout=5)
        assert not sim.faults.is_stalled("binance")
        assert frame["stream"] == "btcusdt@kline_1m"
