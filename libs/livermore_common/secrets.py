"""Stored exchange API secrets: Fernet encryption with a key from the environment, and resolution.

`user_exchanges.credentials` holds either `{"encrypted": {field: fernet_token}}` (encrypted with
`LIVERMORE_SECRETS_KEY`) or `{"env": {field: ENV_VAR_NAME}}` (the *name* of a variable that holds
the value). `LIVERMORE_SECRETS_KEY` may list several comma-separated keys: the first encrypts,
any of them decrypts, so keys can be rotated. Errors name fields and variables, never values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from livermore_common.config import Secret
from livermore_common.errors import ConfigurationError

SECRETS_KEY_ENV = "LIVERMORE_SECRETS_KEY"

__all__ = [
    "SECRETS_KEY_ENV",
    "CredentialsError",
    "decrypt",
    "describe_credentials",
    "encrypt",
    "encrypted_credentials",
    "env_credentials",
    "generate_key",
    "load_key",
    "resolve_credentials",
]


class CredentialsError(ConfigurationError):
    """Stored credentials cannot be used (missing key, unset variable, undecryptable token)."""


KeyLike = Secret | str


def generate_key() -> str:
    """A fresh key for `LIVERMORE_SECRETS_KEY`."""
    return Fernet.generate_key().decode()


def _reveal(key: KeyLike) -> str:
    return key.reveal() if isinstance(key, Secret) else key


def _fernet(key: KeyLike) -> MultiFernet:
    parts = [p.strip() for p in _reveal(key).split(",") if p.strip()]
    if not parts:
        raise CredentialsError(
            f"no secrets key: set {SECRETS_KEY_ENV} (livermore user-exchanges gen-key)"
        )
    try:
        return MultiFernet([Fernet(p.encode()) for p in parts])
    except (ValueError, TypeError):
        # The message of the underlying error could quote key material: keep ours.
        raise CredentialsError(
            f"{SECRETS_KEY_ENV} is malformed: expected url-safe base64 Fernet keys (32 bytes), "
            "comma-separated"
        ) from None


def encrypt(value: str | Secret, key: KeyLike) -> str:
    """The Fernet token of `value` under the first key in `key`."""
    plain = value.reveal() if isinstance(value, Secret) else value
    return _fernet(key).encrypt(plain.encode()).decode()


def decrypt(token: str, key: KeyLike) -> str:
    """The plain value of a token made by `encrypt` with any of the keys in `key`."""
    try:
        return _fernet(key).decrypt(token.encode()).decode()
    except InvalidToken:
        raise CredentialsError(
            f"a stored secret cannot be decrypted with {SECRETS_KEY_ENV} (wrong or rotated key?)"
        ) from None


def load_key(environ: Mapping[str, str]) -> Secret:
    """The secrets key from the environment (empty Secret when unset)."""
    return Secret(environ.get(SECRETS_KEY_ENV, "").strip())


def encrypted_credentials(
    fields: Mapping[str, str | Secret], key: KeyLike
) -> dict[str, dict[str, str]]:
    """`{"encrypted": {field: token}}`, ready for `Database.add_user_exchange`."""
    return {"encrypted": {name: encrypt(value, key) for name, value in fields.items()}}


def env_credentials(variables: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """`{"env": {field: ENV_VAR_NAME}}`; names must look like environment-variable names."""
    for field, name in variables.items():
        if not name or not all(c.isalnum() or c == "_" for c in name) or name[0].isdigit():
            raise CredentialsError(f"{field}: {name!r} is not an environment-variable name")
    return {"env": dict(variables)}


def resolve_credentials(
    credentials: Mapping[str, Any],
    *,
    key: KeyLike | None,
    environ: Mapping[str, str],
) -> dict[str, Secret]:
    """Every field's plain value, each wrapped in a Secret. Env references win over blobs."""
    resolved: dict[str, Secret] = {}
    encrypted = credentials.get("encrypted") or {}
    if encrypted:
        if key is None or not _reveal(key).strip():
            raise CredentialsError(f"credentials are encrypted but {SECRETS_KEY_ENV} is not set")
        for field, token in encrypted.items():
            resolved[field] = Secret(decrypt(str(token), key))
    for field, name in (credentials.get("env") or {}).items():
        value = environ.get(str(name))
        if not value:
            raise CredentialsError(
                f"credential {field!r} refers to environment variable {name!r}, which is not set"
            )
        resolved[field] = Secret(value)
    return resolved


def describe_credentials(credentials: Mapping[str, Any]) -> str:
    """A display form that shows how credentials are stored, never a value or a token."""
    parts = []
    env = credentials.get("env") or {}
    if env:
        parts.append("env(" + ", ".join(f"{f}=${n}" for f, n in sorted(env.items())) + ")")
    encrypted = credentials.get("encrypted") or {}
    if encrypted:
        parts.append("encrypted(" + ", ".join(sorted(encrypted)) + ")")
    return " ".join(parts) or "none"
