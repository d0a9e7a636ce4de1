"""Compare the shape of a JSON value with a recorded fixture: same keys, same value types."""

from __future__ import annotations

from typing import Any


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def mismatches(
    ours: Any, fixture: Any, path: str = "$", ignore: frozenset[str] = frozenset()
) -> list[str]:
    """Differences in key sets and value types; `ignore` holds paths (`$.a[].b`) not compared."""
    if path in ignore:
        return []
    if _kind(ours) != _kind(fixture):
        return [f"{path}: {_kind(ours)} where the fixture has {_kind(fixture)}"]
    if isinstance(fixture, dict):
        out = []
        theirs = {k for k in fixture if f"{path}.{k}" not in ignore}
        mine = {k for k in ours if f"{path}.{k}" not in ignore}
        if mine != theirs:
            out.append(f"{path}: missing {sorted(theirs - mine)}, extra {sorted(mine - theirs)}")
        for key in sorted(mine & theirs):
            out += mismatches(ours[key], fixture[key], f"{path}.{key}", ignore)
        return out
    if isinstance(fixture, list) and fixture and ours:
        if len({_kind(v) for v in fixture}) > 1:  # a row: compare position by position
            if len(ours) != len(fixture):
                return [f"{path}: {len(ours)} fields where the fixture has {len(fixture)}"]
            return [
                m
                for i, (a, b) in enumerate(zip(ours, fixture, strict=True))
                for m in mismatches(a, b, f"{path}[{i}]", ignore)
            ]
        return [m for item in ours for m in mismatches(item, fixture[0], f"{path}[]", ignore)]
    return []
