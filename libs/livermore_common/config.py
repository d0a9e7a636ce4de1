"""Settings from the environment into frozen structs; secrets carry a redacting repr.

Only entry points call `load_*` with `os.environ`; everything else receives settings as arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import msgspec

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/livermore"
ENV_PREFIX = "LIVERMORE_"

S = TypeVar("S", bound=msgspec.Struct)


class Secret:
    """A string that never shows itself in repr, str or logs; call `reveal()` where it is used."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


class ConfigError(ValueError):
    """A setting is missing, unknown or malformed; the message names the variable."""


class CommonSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    redis_url: str = DEFAULT_REDIS_URL
    database_url: str = DEFAULT_DATABASE_URL
    log_format: Literal["json", "console"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Prepended to every Redis name (isolates installations or test runs sharing a Redis).
    namespace: str = ""
    control_secret: Secret = Secret("")
    instance_id: str = ""
    # While idle, the hot-path services rehearse their path this often (ms; 0 = off): see
    # `livermore_common.warm`.
    keep_warm_ms: float = 2.0


def _convert_hook(type_: type, obj: Any) -> Any:
    if type_ is Secret and isinstance(obj, str):
        return Secret(obj)
    raise NotImplementedError


def settings_from_env(cls: type[S], environ: Mapping[str, str], *, prefix: str = ENV_PREFIX) -> S:
    """Build `cls` from `PREFIX_FIELD` variables (other services' variables are left alone);
    a malformed value fails at start with the variable named."""
    fields = set(cls.__struct_fields__)
    raw: dict[str, Any] = {}
    for name, value in environ.items():
        field = name[len(prefix) :].lower() if name.startswith(prefix) else ""
        if field in fields:
            raw[field] = value
    try:
        return msgspec.convert(raw, cls, strict=False, dec_hook=_convert_hook)
    except msgspec.ValidationError as exc:
        raise ConfigError(
            f"invalid setting: {exc} (check the {prefix}* environment variables)"
        ) from None


def load_common(environ: Mapping[str, str]) -> CommonSettings:
    return settings_from_env(CommonSettings, environ)


def load_exchange_ca_file(environ: Mapping[str, str]) -> str:
    """`LIVERMORE_EXCHANGE_CA_FILE`: extra certificates (PEM) trusted for the venues' https://
    and wss:// endpoints, on top of the system's (the simulator's with `--tls`); "" = none."""
    ca_file = environ.get("LIVERMORE_EXCHANGE_CA_FILE", "").strip()
    if ca_file and not os.path.isfile(ca_file):
        raise ConfigError(f"LIVERMORE_EXCHANGE_CA_FILE {ca_file!r} is not a readable file")
    return ca_file
