"""Stored-secret encryption and credential resolution: round trips, refusals, no leaks."""

from __future__ import annotations

import pytest

from livermore_common import secrets
from livermore_common.config import Secret
from livermore_common.secrets import CredentialsError

PLAIN = "very-secret-hmac-value-0123456789"


def test_encrypt_round_trips_and_hides_the_value() -> None:
    key = secrets.generate_key()
    token = secrets.encrypt(PLAIN, key)
    assert PLAIN not in token
    assert secrets.decrypt(token, key) == PLAIN
    assert secrets.decrypt(secrets.encrypt(Secret(PLAIN), Secret(key)), key) == PLAIN


def test_a_wrong_key_is_refused_without_echoing_anything() -> None:
    token = secrets.encrypt(PLAIN, secrets.generate_key())
    other = secrets.generate_key()
    with pytest.raises(CredentialsError) as info:
        secrets.decrypt(token, other)
    assert PLAIN not in str(info.value) and token not in str(info.value)
    assert other not in str(info.value)


def test_keys_rotate_first_encrypts_any_decrypts() -> None:
    old, new = secrets.generate_key(), secrets.generate_key()
    token = secrets.encrypt(PLAIN, old)
    assert secrets.decrypt(token, f"{new},{old}") == PLAIN
    assert secrets.decrypt(secrets.encrypt(PLAIN, f"{new},{old}"), new) == PLAIN


@pytest.mark.parametrize("key", ["", "  ", "not-a-fernet-key"])
def test_missing_or_malformed_keys_are_configuration_errors(key: str) -> None:
    with pytest.raises(CredentialsError) as info:
        secrets.encrypt(PLAIN, key)
    assert secrets.SECRETS_KEY_ENV in str(info.value)
    if key.strip():
        assert key not in str(info.value)


def test_resolve_encrypted_and_env_credentials() -> None:
    key = secrets.generate_key()
    stored = secrets.encrypted_credentials({"api_key": "k-1", "api_secret": PLAIN}, key)
    assert PLAIN not in repr(stored)
    resolved = secrets.resolve_credentials(stored, key=key, environ={})
    assert {f: v.reveal() for f, v in resolved.items()} == {"api_key": "k-1", "api_secret": PLAIN}
    assert PLAIN not in repr(resolved)

    by_env = secrets.env_credentials({"api_key": "ANN_KEY", "api_secret": "ANN_SECRET"})
    assert by_env == {"env": {"api_key": "ANN_KEY", "api_secret": "ANN_SECRET"}}
    environ = {"ANN_KEY": "k-2", "ANN_SECRET": PLAIN}
    resolved = secrets.resolve_credentials(by_env, key=None, environ=environ)
    assert resolved["api_secret"].reveal() == PLAIN


def test_resolution_failures_name_the_variable_never_a_value() -> None:
    by_env = {"env": {"api_key": "ANN_KEY", "api_secret": "ANN_SECRET"}}
    with pytest.raises(CredentialsError, match="ANN_SECRET"):
        secrets.resolve_credentials(by_env, key=None, environ={"ANN_KEY": "k"})
    stored = secrets.encrypted_credentials({"api_secret": PLAIN}, secrets.generate_key())
    with pytest.raises(CredentialsError, match=secrets.SECRETS_KEY_ENV):
        secrets.resolve_credentials(stored, key=Secret(""), environ={})


@pytest.mark.parametrize("name", ["", "1ABC", "HAS SPACE", "A-B", "x=y"])
def test_env_references_must_be_variable_names(name: str) -> None:
    with pytest.raises(CredentialsError):
        secrets.env_credentials({"api_secret": name})


def test_describe_shows_storage_kind_and_names_only() -> None:
    key = secrets.generate_key()
    stored = secrets.encrypted_credentials({"api_key": "k", "api_secret": PLAIN}, key)
    text = secrets.describe_credentials(stored)
    assert text == "encrypted(api_key, api_secret)"
    assert "gAAAA" not in text
    env = secrets.describe_credentials({"env": {"api_secret": "S", "api_key": "K"}})
    assert env == "env(api_key=$K, api_secret=$S)"
    assert secrets.describe_credentials({}) == "none"


def test_load_key_reads_the_documented_variable() -> None:
    assert secrets.load_key({"LIVERMORE_SECRETS_KEY": " abc "}).reveal() == "abc"
    assert not secrets.load_key({})
