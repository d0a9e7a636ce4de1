"""Stateless pseudo-randomness: a 64-bit mixer so any value is a pure function of its key."""

from __future__ import annotations

import math

_M64 = (1 << 64) - 1


def mix(*parts: int) -> int:
    """splitmix64-style hash of a tuple of integers (negative ones are folded to 64 bits)."""
    h = 0x9E3779B97F4A7C15
    for part in parts:
        h = ((h ^ (part & _M64)) * 0xBF58476D1CE4E5B9) & _M64
        h ^= h >> 31
        h = (h * 0x94D049BB133111EB) & _M64
        h ^= h >> 29
    return h


def unit_of(h: int) -> float:
    """A float in (0, 1) from a hash."""
    return ((h >> 11) + 0.5) / 9007199254740992.0


def gauss_of(h: int) -> float:
    """A standard normal draw from a hash (Box-Muller)."""
    u1 = unit_of(h)
    u2 = unit_of(mix(h, 1))
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
