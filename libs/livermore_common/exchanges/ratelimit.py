"""Async token-bucket limiter for REST requests and WS control messages, fed by venue feedback.

One limiter covers one budget: Coinbase's requests per second, Binance's request weight per minute,
one Binance connection's incoming-message rate. Callers `await acquire(cost)` before each request;
the HTTP layer reports `Retry-After` (`penalize`) and Binance's `X-MBX-USED-WEIGHT-1M`
(`observe_used`) so the local bucket never believes it has more room than the venue says.
The clock and the sleep are injectable so the arithmetic is tested without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

Clock = Callable[[], float]
_EPSILON = 1e-6
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """`rate` tokens per second refill a bucket of `capacity`; a request costs `cost` tokens."""

    def __init__(
        self,
        *,
        rate: float,
        capacity: float,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._sleep = sleep
        self._tokens = capacity
        self._updated = clock()
        self._blocked_until = 0.0
        # FIFO: waiters are served in arrival order, so a heavy request cannot starve.
        self._lock = asyncio.Lock()

    @classmethod
    def per_minute(cls, limit: float, *, safety: float = 0.9, **kw: Any) -> RateLimiter:
        """A budget published per minute (Binance weight), kept `safety` below the venue's."""
        budget = max(1.0, limit * safety)
        return cls(rate=budget / 60.0, capacity=budget, **kw)

    @classmethod
    def per_second(
        cls, limit: float, *, burst: float | None = None, safety: float = 0.95, **kw: Any
    ) -> RateLimiter:
        """A limit published per second (Coinbase public REST), paced evenly `safety` below it.

        No burst by default: a bucket holding a second's worth of tokens would let through its
        burst plus a second of refill in the same second (twice the limit), which a venue
        counting per second refuses with 429. Evenly spaced requests never exceed it, and the
        margin absorbs jitter in when they arrive."""
        rate = max(1e-3, limit * safety)
        return cls(rate=rate, capacity=burst if burst is not None else 1.0, **kw)

    @property
    def tokens(self) -> float:
        self._refill(self._clock())
        return self._tokens

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
        self._updated = now

    def reserve(self, cost: float = 1.0) -> float:
        """Take `cost` tokens if available now and return 0, else return the seconds to wait."""
        cost = min(cost, self.capacity)  # a request larger than the bucket waits for a full one
        now = self._clock()
        if now < self._blocked_until:
            return self._blocked_until - now
        self._refill(now)
        # The tolerance absorbs float rounding, which would otherwise ask for waits so small
        # that the clock cannot advance by them.
        if self._tokens >= cost - _EPSILON:
            self._tokens = max(0.0, self._tokens - cost)
            return 0.0
        return (cost - self._tokens) / self.rate

    async def acquire(self, cost: float = 1.0) -> None:
        """Wait until `cost` tokens are available (honouring any Retry-After), then take them."""
        async with self._lock:
            while (wait := self.reserve(cost)) > 0:
                await self._sleep(wait)

    def penalize(self, retry_after: float) -> None:
        """The venue said "retry after N seconds" (HTTP 429/418): nobody sends before then."""
        now = self._clock()
        self._blocked_until = max(self._blocked_until, now + max(0.0, retry_after))
        self._refill(now)
        self._tokens = 0.0

    def observe_used(self, used: float, limit: float | None = None) -> None:
        """The venue reported `used` of its `limit` (default: our capacity) in its window."""
        self._refill(self._clock())
        remaining = (self.capacity if limit is None else min(self.capacity, limit)) - used
        self._tokens = max(0.0, min(self._tokens, remaining))


def limit_value(api_limits: Mapping[str, Any], key: str, default: float) -> float:
    """A positive number from `exchanges.api_limits`, or `default` when absent or unusable."""
    value = api_limits.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default
