"""The ingestor against the simulator over TLS (wss:// and https://, a self-signed certificate
trusted through LIVERMORE_EXCHANGE_CA_FILE): candles equal the truth, announced once; without
that trust the certificate is refused (verification is never switched off)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from livermore_common.db import Database
from livermore_common.errors import TransientError
from livermore_common.exchanges.base import AdapterOptions
from livermore_common.exchanges.factory import ExchangeAdapterFactory
from livermore_common.exchanges.ws import open_socket
from livermore_common.keys import KeySpace
from services.ingestor.config import build_parser, settings_from_args
from services.ingestor.runner import adapter_options, info_from_row
from services.ingestor.service import Ingestor
from services.sim.server import Simulator
from tests.helpers import eventually

from .conftest import (
    RunningIngestor,
    announced,
    assert_matches_truth,
    assert_no_duplicates,
    database_pointed_at,
    settings_for,
    sim_config,
    stored,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def tls_sim() -> AsyncIterator[Simulator]:
    async with Simulator(sim_config(tls=True)) as simulator:
        yield simulator


@pytest.fixture
async def tls_db(database_url: str, tls_sim: Simulator) -> AsyncIterator[Database]:
    async with database_pointed_at(database_url, tls_sim) as db:
        yield db


def test_the_ca_file_comes_from_the_environment_and_must_exist(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from livermore_common.config import ConfigError

    args = build_parser().parse_args(["--exchange", "binance"])
    pem = tmp_path / "ca.pem"
    pem.write_text("x")
    settings = settings_from_args(args, {"LIVERMORE_EXCHANGE_CA_FILE": str(pem)})
    assert adapter_options(settings).ca_file == str(pem)
    assert adapter_options(settings_from_args(args, {})).ca_file is None
    with pytest.raises(ConfigError):
        settings_from_args(args, {"LIVERMORE_EXCHANGE_CA_FILE": str(tmp_path / "missing.pem")})


@pytest.mark.parametrize(
    "exchange,ex_id,symbols",
    [("binance", 2, ("BTCUSDT", "ETHUSDT")), ("coinbase", 1, ("BTC-USD", "ETH-USD"))],
)
async def test_the_ingestor_works_over_tls(
    tls_sim: Simulator,
    tls_db: Database,
    database_url: str,
    redis_url: str,
    namespace: str,
    redis_client: aioredis.Redis,
    keyspace: KeySpace,
    exchange: str,
    ex_id: int,
    symbols: tuple[str, ...],
) -> None:
    assert tls_sim.ca_file is not None
    row = await tls_db.get_exchange(exchange)
    assert row.ws_url.startswith("wss://") and row.rest_url.startswith("https://")
    settings = settings_for(
        exchange,
        database_url,
        redis_url,
        namespace,
        autostart=True,
        symbols=symbols,
        exchange_ca_file=tls_sim.ca_file,
    )
    factory = ExchangeAdapterFactory(options=adapter_options(settings))

    async def make_adapter():  # type: ignore[no-untyped-def]
        return factory.create_from_info(info_from_row(await tls_db.get_exchange(row.id)))

    ingestor = Ingestor(
        settings=settings,
        redis=redis_client,
        keys=keyspace,
        info=info_from_row(row),
        adapter_factory=make_adapter,
        instance_id="tls",
    )
    stop = asyncio.Event()
    running = RunningIngestor(ingestor, asyncio.create_task(ingestor.run(stop)), stop)
    try:

        async def enough() -> bool:
            counts = [len(await stored(redis_client, keyspace, ex_id, s, "1m")) for s in symbols]
            return min(counts) >= 24  # 20 backfilled over https + live closes over wss

        await eventually(enough, timeout=40, interval=0.2)
    finally:
        await running.shutdown()
    for symbol in symbols:
        got = await stored(redis_client, keyspace, ex_id, symbol, "1m")
        assert_matches_truth(tls_sim, exchange, symbol, "1m", got)
    assert_no_duplicates(await announced(redis_client, keyspace))


@pytest.mark.parametrize("exchange", ["binance", "coinbase"])
async def test_an_untrusted_certificate_is_refused(
    tls_sim: Simulator, tls_db: Database, exchange: str
) -> None:
    info = info_from_row(await tls_db.get_exchange(exchange))
    adapter = ExchangeAdapterFactory(options=AdapterOptions()).create_from_info(info)
    try:
        with pytest.raises(TransientError, match="Certificate"):
            await adapter.server_time()
    finally:
        await adapter.aclose()  # type: ignore[attr-defined]
    ws = info.ws_url + ("/stream?streams=btcusdt@kline_1m" if exchange == "binance" else "")
    with pytest.raises(TransientError, match="SSLCertVerificationError"):
        await open_socket(ws, AdapterOptions())
    assert tls_sim.ca_file is not None
    trusted = await open_socket(ws, AdapterOptions(ca_file=tls_sim.ca_file))
    await trusted.close()
