"""Rate limiter and backoff arithmetic with an injected clock (no real waiting)."""

from __future__ import annotations

import asyncio
import random

import pytest

from livermore_common.exchanges.backoff import Backoff
from livermore_common.exchanges.ratelimit import RateLimiter, limit_value


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(clock: FakeClock, rate: float, capacity: float) -> RateLimiter:
    return RateLimiter(rate=rate, capacity=capacity, clock=clock, sleep=clock.sleep)


async def test_burst_up_to_capacity_then_paced_at_rate() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=10, capacity=10)
    for _ in range(10):
        await lim.acquire()
    assert clock.slept == []
    await lim.acquire()
    assert clock.slept == [pytest.approx(0.1)]
    for _ in range(9):
        await lim.acquire()
    assert clock.now == pytest.approx(1001.0)  # 20 requests in one second at 10/s + burst 10


@pytest.mark.parametrize("offset", [0.0, 0.35, 0.999])
async def test_per_second_never_exceeds_the_limit_in_any_second(offset: float) -> None:
    """Coinbase counts requests per second: no one-second window may see more than the limit,
    whenever the requests start (a full bucket plus its refill would allow twice as many)."""
    clock = FakeClock()
    clock.now += offset
    lim = RateLimiter.per_second(10, clock=clock, sleep=clock.sleep)
    sent: list[float] = []
    for _ in range(100):
        await lim.acquire()
        sent.append(clock.now)
    assert max(sum(1 for t in sent if w <= t < w + 1.0) for w in sent) <= 10
    for second in {int(t) for t in sent}:  # fixed windows too, as the venue counts them
        assert sum(1 for t in sent if int(t) == second) <= 10
    assert sent[-1] - sent[0] <= 99 / (10 * 0.95) + 1e-6  # and no slower than the margin


async def test_weighted_costs() -> None:
    clock = FakeClock()
    lim = RateLimiter.per_minute(6000, safety=1.0, clock=clock, sleep=clock.sleep)
    await lim.acquire(5999)
    await lim.acquire(2)  # one token short: 1 token / (100 per s)
    assert clock.slept == [pytest.approx(0.01)]


async def test_retry_after_blocks_every_caller_until_then() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=100, capacity=100)
    lim.penalize(30)
    assert lim.reserve() == pytest.approx(30)
    await lim.acquire()
    assert clock.now >= 1030.0


def test_used_weight_header_shrinks_the_budget() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=100, capacity=5400)
    lim.observe_used(5000)
    assert lim.tokens == pytest.approx(400)
    lim.observe_used(10)  # never grows the local budget
    assert lim.tokens == pytest.approx(400)
    clock.now += 1
    assert lim.tokens == pytest.approx(500)


def test_cost_above_capacity_waits_for_a_full_bucket_instead_of_forever() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=1, capacity=5)
    assert lim.reserve(50) == 0.0
    assert lim.reserve(1) == pytest.approx(1.0)


async def test_waiters_are_served_in_order() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=1, capacity=1)
    order: list[int] = []

    async def take(i: int) -> None:
        await lim.acquire()
        order.append(i)

    await asyncio.gather(*(take(i) for i in range(5)))
    assert order == [0, 1, 2, 3, 4]
    assert clock.now == pytest.approx(1004.0)


def test_limit_value_reads_the_row_or_falls_back() -> None:
    limits = {"rest_weight_per_minute": 1200, "bad": "x", "zero": 0}
    assert limit_value(limits, "rest_weight_per_minute", 6000) == 1200
    assert limit_value(limits, "bad", 5) == 5
    assert limit_value(limits, "zero", 5) == 5
    assert limit_value(limits, "missing", 7) == 7


def test_invalid_limiter_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate=0, capacity=1)


# ---- backoff -------------------------------------------------------------------------------------


def test_full_jitter_stays_under_an_exponential_ceiling_capped() -> None:
    backoff = Backoff(base=0.5, cap=8.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(12)]
    ceilings = [min(8.0, 0.5 * 2**n) for n in range(12)]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays[6:]) > 4.0  # the cap is reached, jitter spreads below it


def test_jitter_is_spread_not_constant() -> None:
    backoff = Backoff(base=1.0, cap=1.0, rng=random.Random(1))
    delays = {round(backoff.next_delay(), 6) for _ in range(50)}
    assert len(delays) > 40


def test_reset_starts_over_and_huge_attempts_do_not_overflow() -> None:
    backoff = Backoff(base=0.5, cap=30.0, rng=random.Random(3))
    backoff.attempt = 10_000
    assert backoff.ceiling(backoff.attempt) == 30.0
    backoff.next_delay()
    backoff.reset()
    assert backoff.attempt == 0 and backoff.next_delay() <= 0.5


async def test_wait_sleeps_the_delay_it_returns() -> None:
    clock = FakeClock()
    backoff = Backoff(base=2.0, cap=2.0, rng=random.Random(5), sleep=clock.sleep)
    delay = await backoff.wait()
    assert clock.slept == [delay]


def test_invalid_backoff_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(base=0)
