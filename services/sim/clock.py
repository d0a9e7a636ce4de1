"""The simulator's clock: sim time runs `speed` times faster than real time from an epoch.

Every exchange time the simulator shows (event times, heartbeats, server time, trade times) comes
from here, so a client that trusts only exchange time behaves the same at any speed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

MINUTE_MS = 60_000


def now_aligned_ms() -> int:
    """Wall-clock now, aligned down to the minute."""
    now = int(time.time() * 1000)
    return now - now % MINUTE_MS


class SimClock:
    """sim_time = epoch + (monotonic elapsed) * speed; it can be pushed forward, never back."""

    def __init__(
        self,
        *,
        start_ms: int | None = None,
        speed: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.start_ms = now_aligned_ms() if start_ms is None else start_ms
        self.speed = speed
        self._monotonic = monotonic
        self._epoch_ms = float(self.start_ms)
        self._mono0 = monotonic()

    def now_s(self) -> float:
        """Sim time in epoch seconds (float, sub-millisecond precision)."""
        return (self._epoch_ms + (self._monotonic() - self._mono0) * self.speed * 1000.0) / 1000.0

    def now_ms(self) -> int:
        return int(self._epoch_ms + (self._monotonic() - self._mono0) * self.speed * 1000.0)

    def real_delay(self, sim_ms: float) -> float:
        """Real seconds until the clock reads `sim_ms` (0 if already past)."""
        return max(0.0, (sim_ms - self.now_ms()) / (self.speed * 1000.0))

    async def sleep_until(self, sim_ms: float) -> None:
        delay = self.real_delay(sim_ms)
        if delay > 0:
            await asyncio.sleep(delay)

    def advance_to(self, sim_ms: int) -> None:
        """Jump forward so that now >= sim_ms (used by the firehose, which runs ahead)."""
        behind = sim_ms - self.now_ms()
        if behind > 0:
            self._epoch_ms += behind
