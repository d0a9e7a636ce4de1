"""Binance kline events and combined-stream frames, rendered with fixed templates (cheap)."""

from __future__ import annotations

from services.sim.formats import fixed8, price8
from services.sim.market import MINUTE_MS, Bar
from services.sim.universe import SymbolSpec

# Trade ids: the first id of a kline is its first minute's index * ID_STRIDE; ids are contiguous
# within a kline but not across klines (real ids are globally contiguous; nothing relies on it).
ID_STRIDE = 100_000

_KLINE = (
    '{"e":"kline","E":%d,"s":"%s","k":{"t":%d,"T":%d,"s":"%s","i":"%s","f":%d,"L":%d,'
    '"o":"%s","c":"%s","h":"%s","l":"%s","v":"%s","n":%d,"x":%s,"q":"%s","V":"%s","Q":"%s",'
    '"B":"0"}}'
)


def trade_ids(start_ms: int, bar: Bar) -> tuple[int, int]:
    if bar.trades == 0:
        return -1, -1
    first = start_ms // MINUTE_MS * ID_STRIDE
    return first, first + bar.trades - 1


def kline_event(
    spec: SymbolSpec, interval: str, step_ms: int, start_ms: int, bar: Bar, final: bool, now: int
) -> str:
    first, last = trade_ids(start_ms, bar)
    d = spec.decimals
    return _KLINE % (
        now,
        spec.name,
        start_ms,
        start_ms + step_ms - 1,
        spec.name,
        interval,
        first,
        last,
        price8(bar.open, d),
        price8(bar.close, d),
        price8(bar.high, d),
        price8(bar.low, d),
        fixed8(bar.volume),
        bar.trades,
        "true" if final else "false",
        fixed8(bar.quote),
        fixed8(bar.taker_volume),
        fixed8(bar.taker_quote),
    )


def combined(stream: str, data: str) -> str:
    return '{"stream":"%s","data":%s}' % (stream, data)  # noqa: UP031 - hot path


def server_shutdown_event(now: int) -> str:
    return '{"e":"serverShutdown","E":%d}' % now  # noqa: UP031


def malformed_event(kind: str, spec: SymbolSpec, interval: str, start_ms: int, now: int) -> str:
    """A hostile variant of a forming kline (never final, so the real final still counts)."""
    step = 60_000
    base = Bar(100, 100, 100, 100, 1, 1, 1, 0, 0)
    good = kline_event(spec, interval, step, start_ms, base, False, now)
    if kind == "bad_json":
        return good[: len(good) // 2] + "}{,"
    price = price8(100, spec.decimals)
    if kind == "wrong_types":
        return good.replace(f'"t":{start_ms}', '"t":"soon"').replace('"n":1,', '"n":"one",')
    if kind == "nan":
        return good.replace(f'"c":"{price}"', '"c":"NaN"')
    if kind == "negative_price":
        return good.replace(f'"o":"{price}"', '"o":"-1.00000000"')
    # huge: a valid event carrying a 2 MiB field
    return good[:-1] + ',"pad":"' + "x" * (2 << 20) + '"}'
