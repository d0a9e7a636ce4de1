"""Which ingestor instance owns which symbol: rendezvous (highest-random-weight) hashing.

Every instance computes the same answer from the same member list, so no coordinator is needed,
and when a member joins or leaves only the symbols it gains or loses move.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence


def _weight(member: str, symbol: str) -> int:
    digest = hashlib.blake2b(f"{member}\x00{symbol}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner_of(symbol: str, members: Sequence[str]) -> str:
    """The member that owns `symbol`; `members` must be non-empty."""
    if not members:
        raise ValueError("no live members to own symbols")
    return max(members, key=lambda m: (_weight(m, symbol), m))


def assign(symbols: Iterable[str], members: Sequence[str], me: str) -> list[str]:
    """The symbols `me` owns among `members` (which should include `me`), in input order."""
    live = sorted(set(members) | {me})
    return [s for s in symbols if owner_of(s, live) == me]
