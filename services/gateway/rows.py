"""Turning database rows of any shape (asyncpg Record, msgspec Struct, dataclass) into JSON."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import msgspec


def as_dict(row: Any) -> dict[str, Any]:
    """A plain dict of the row's columns."""
    if isinstance(row, msgspec.Struct):
        return {f: getattr(row, f) for f in row.__struct_fields__}
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}
    if isinstance(row, Mapping):
        return dict(row)
    return dict(row.items())


def epoch_ms(value: Any) -> int | None:
    """Epoch ms from a datetime or a number (the wire format for times)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return int(value.timestamp() * 1000)
    return int(value)


def json_value(value: Any) -> Any:
    """Values JSON cannot carry as they are: datetimes as epoch ms, decimals as floats."""
    if isinstance(value, dt.datetime):
        return epoch_ms(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return value


def row_json(row: Any) -> dict[str, Any]:
    return {k: json_value(v) for k, v in as_dict(row).items()}
