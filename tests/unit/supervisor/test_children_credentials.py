"""Output prefixing, restart backoff and the generated secrets of `livermore up`."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from livermore_common.config import ConfigError
from services.supervisor.children import Backoff, Output, prefixed
from services.supervisor.credentials import (
    CONTROL_SECRET_ENV,
    GATEWAY_TOKEN_ENV,
    SECRETS_FILE,
    ensure_credentials,
)


def test_lines_are_prefixed_and_colour_free() -> None:
    assert prefixed("sim", b"\x1b[32minfo\x1b[0m ready\n") == "[sim] info ready"
    assert prefixed("gateway", "plain\r\n") == "[gateway] plain"
    out = io.StringIO()
    Output(out).line("alerts", b"one\n")
    Output(out).say("two")
    assert out.getvalue() == "[alerts] one\n[up] two\n"


def test_backoff_doubles_to_a_cap_and_resets_after_a_healthy_run() -> None:
    b = Backoff(base=1, cap=8, healthy_after=60)
    assert [b.delay(0.5) for _ in range(5)] == [1, 2, 4, 8, 8]
    assert b.delay(120) == 1
    assert b.delay(1) == 2


def test_missing_secrets_are_generated_once_and_kept_private(tmp_path: Path) -> None:
    first = ensure_credentials({}, tmp_path)
    assert set(first.env) == {CONTROL_SECRET_ENV, GATEWAY_TOKEN_ENV}
    assert first.token is not None and first.token.reveal() == first.env[GATEWAY_TOKEN_ENV]
    assert len(first.env[GATEWAY_TOKEN_ENV]) >= 16
    assert first.env[CONTROL_SECRET_ENV] != first.env[GATEWAY_TOKEN_ENV]
    path = tmp_path / SECRETS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_credentials({}, tmp_path).env == first.env  # stable across runs
    assert first.env[GATEWAY_TOKEN_ENV] not in repr(first)


def test_secrets_from_the_environment_win_and_are_never_written(tmp_path: Path) -> None:
    env = {CONTROL_SECRET_ENV: "from-env", GATEWAY_TOKEN_ENV: "t" * 20}
    creds = ensure_credentials(env, tmp_path)
    assert creds.env == {} and creds.token is None
    assert not (tmp_path / SECRETS_FILE).exists()
    only_token = ensure_credentials({GATEWAY_TOKEN_ENV: "t" * 20}, tmp_path)
    assert set(only_token.env) == {CONTROL_SECRET_ENV} and only_token.token is None
    assert "t" * 20 not in (tmp_path / SECRETS_FILE).read_text()


def test_a_short_gateway_token_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=GATEWAY_TOKEN_ENV):
        ensure_credentials({GATEWAY_TOKEN_ENV: "short"}, tmp_path)
