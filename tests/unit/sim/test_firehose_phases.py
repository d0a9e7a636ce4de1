"""The firehose's prepared minutes: the phases a connection writes hold its streams' frames, in
its order, exactly as rendered one by one (a subset, one stream, past the prepared window)."""

from __future__ import annotations

from operator import itemgetter

import pytest

from services.sim.clock import SimClock
from services.sim.config import SimConfig
from services.sim.faults import Faults
from services.sim.firehose import Firehose, render_symbol
from services.sim.market import MINUTE_MS, Market
from services.sim.truth import Truth

START = 1_767_225_600_000


@pytest.fixture(scope="module")
def firehose() -> Firehose:
    config = SimConfig(symbols=5, start_time_ms=START, firehose=True, firehose_minutes=3)
    market = Market("binance", config)
    fh = Firehose(market, SimClock(start_ms=START), Truth({"binance": market}), Faults(), config)
    fh.prepare()
    return fh


@pytest.mark.parametrize("wanted", [[0, 1, 2, 3, 4], [3, 0, 4], [2]])
@pytest.mark.parametrize("offset", [0, 2, 3])  # 3: past the prepared window, rendered live
def test_phases_hold_the_wanted_streams_frames_in_order(
    firehose: Firehose, wanted: list[int], offset: int
) -> None:
    minute = START // MINUTE_MS + offset
    one_by_one = [render_symbol(firehose.market, i, minute, 1)[0] for i in wanted]
    expected = [b"".join(frames[k] for frames in one_by_one) for k in range(4)]
    pick = itemgetter(*wanted)
    assert firehose._phases(offset, wanted, pick) == expected
