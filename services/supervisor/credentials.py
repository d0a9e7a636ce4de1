"""The control secret and gateway token of a local run: from the environment, else generated once.

Generated values are kept in `<state dir>/secrets.env` (mode 0600) so the admin page's token stays
the same from one `livermore up` to the next. Nothing here logs or prints a value.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from livermore_common.config import ConfigError, Secret

CONTROL_SECRET_ENV = "LIVERMORE_CONTROL_SECRET"
GATEWAY_TOKEN_ENV = "LIVERMORE_GATEWAY_TOKEN"
SECRETS_FILE = "secrets.env"
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True, slots=True)
class Credentials:
    """Variables to add to the children's environment; `token` is set when the supervisor chose
    it (so it tells the user once), None when the user's environment supplied one."""

    env: dict[str, str] = field(repr=False)  # holds secrets
    token: Secret | None = None


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text().splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name and not name.startswith("#"):
            values[name.strip()] = value.strip()
    return values


def _write_private(path: Path, values: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{k}={v}\n" for k, v in sorted(values.items()))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)  # an older file may have had looser bits


def ensure_credentials(environ: Mapping[str, str], state_dir: Path) -> Credentials:
    """Fill in whichever of the control secret and gateway token the environment lacks."""
    given_token = environ.get(GATEWAY_TOKEN_ENV, "")
    if given_token and len(given_token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"{GATEWAY_TOKEN_ENV} must be at least {MIN_TOKEN_LENGTH} characters")
    missing = [n for n in (CONTROL_SECRET_ENV, GATEWAY_TOKEN_ENV) if not environ.get(n)]
    if not missing:
        return Credentials(env={}, token=None)
    path = state_dir / SECRETS_FILE
    stored = read_env_file(path)
    added = {name: stored.get(name) or secrets.token_urlsafe(32) for name in missing}
    if any(stored.get(name) != value for name, value in added.items()):
        _write_private(path, stored | added)
    token = Secret(added[GATEWAY_TOKEN_ENV]) if GATEWAY_TOKEN_ENV in added else None
    return Credentials(env=added, token=token)
