"""The reference series of DOMAIN.md §5 (Vectors A, S, T) and a random gappy series."""

from __future__ import annotations

import math
import random

from livermore_common.messages import Candle

T0 = 1_704_067_200_000  # 2024-01-01T00:00Z
STEP = 60_000


def vector_a() -> list[Candle]:
    closes = [100 + 10 * math.sin(i / 5) + 0.5 * i for i in range(60)]
    out = []
    for i, close in enumerate(closes):
        open_ = closes[i - 1] if i else close - 0.3
        high = max(open_, close) + 1 + (i % 3) * 0.5
        low = min(open_, close) - 1 - (i % 4) * 0.25
        out.append(
            Candle(timestamp=T0 + i * STEP, open=open_, high=high, low=low, close=close, volume=1.0)
        )
    return out


def vector_s() -> tuple[list[Candle], list[bool]]:
    """Vector A with every bar i % 5 == 4 replaced by a synthetic one (O=H=L=C=previous close)."""
    bars = vector_a()
    flags = [i % 5 == 4 for i in range(len(bars))]
    for i, synthetic in enumerate(flags):
        if synthetic:
            p = bars[i - 1].close
            bars[i] = Candle(timestamp=bars[i].timestamp, open=p, high=p, low=p, close=p, volume=0)
    return bars, flags


def vector_t(factor: float) -> list[Candle]:
    """p starts at 100 and is multiplied by `factor` each bar (bar 0 included); O=C=p."""
    out = []
    p = 100.0
    for i in range(60):
        p *= factor
        out.append(
            Candle(timestamp=T0 + i * STEP, open=p, high=1.01 * p, low=0.99 * p, close=p, volume=1)
        )
    return out


def random_gappy(
    seed: int, count: int = 400, step: int = STEP, gap_chance: float = 0.15
) -> list[Candle]:
    """A random walk; after a bar, with `gap_chance`, up to three buckets are missing."""
    rng = random.Random(seed)
    out = []
    ts = T0
    price = 100.0
    for _ in range(count):
        open_ = price
        price *= math.exp(rng.gauss(0, 0.01))
        high = max(open_, price) * (1 + rng.random() * 0.005)
        low = min(open_, price) * (1 - rng.random() * 0.005)
        out.append(
            Candle(timestamp=ts, open=open_, high=high, low=low, close=price, volume=rng.random())
        )
        ts += step * (1 + (rng.randrange(4) if rng.random() < gap_chance else 0))
    return out
