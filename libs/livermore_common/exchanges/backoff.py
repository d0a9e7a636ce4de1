"""Exponential backoff with full jitter for reconnects (spreads a herd of clients apart)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable


class Backoff:
    """Delay n (0-based) is uniform in [0, min(cap, base * factor**n)]; `reset()` after success."""

    def __init__(
        self,
        *,
        base: float = 0.5,
        cap: float = 30.0,
        factor: float = 2.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if base <= 0 or cap <= 0 or factor < 1:
            raise ValueError("base and cap must be positive and factor >= 1")
        self.base = base
        self.cap = cap
        self.factor = factor
        self.attempt = 0
        self._rng = rng or random.Random()
        self._sleep = sleep

    def ceiling(self, attempt: int) -> float:
        # Cap the exponent first so a long outage cannot overflow the float.
        exponent = min(attempt, 64)
        return min(self.cap, self.base * self.factor**exponent)

    def next_delay(self) -> float:
        delay = self._rng.uniform(0.0, self.ceiling(self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0

    async def wait(self) -> float:
        """Sleep the next delay and return it."""
        delay = self.next_delay()
        await self._sleep(delay)
        return delay
