"""Signing and verification of control commands: round trip, tampering, time window, no secret."""

from __future__ import annotations

import hashlib
import hmac

import msgspec
import pytest

from livermore_common import control, messages
from livermore_common.config import Secret
from livermore_common.errors import AuthenticationError
from livermore_common.messages import ControlCommand

SECRET = "s3cret-for-tests"
NOW = 1_704_067_200_000


def command(**changes: object) -> ControlCommand:
    base = ControlCommand(
        id="c0ffee",
        command="add-symbol",
        exchange="binance",
        issued_at=NOW,
        params={"symbol": "BTCUSDT", "tier": 1, "note": "é"},
    )
    return msgspec.structs.replace(base, **changes)


def reason(cmd: ControlCommand, secret: str = SECRET, now_ms: int = NOW) -> str:
    with pytest.raises(AuthenticationError) as info:
        control.verify(cmd, secret, now_ms=now_ms)
    return str(info.value)


def test_the_signature_is_hmac_sha256_over_the_documented_canonical_text() -> None:
    text = 'c0ffee\nadd-symbol\nbinance\n1704067200000\n{"note":"é","symbol":"BTCUSDT","tier":1}'
    expected = hmac.new(SECRET.encode(), text.encode(), hashlib.sha256).hexdigest()
    assert control.canonical(command()) == text.encode()
    assert control.sign(command(), SECRET).signature == expected
    assert control.canonical(command(params={})).endswith(b"\n{}")


def test_round_trip_through_the_wire() -> None:
    signed = control.sign(command(), Secret(SECRET))
    received = control.decode_command(messages.encode(signed))
    control.verify(received, SECRET, now_ms=NOW + 29_000)
    control.verify(received, Secret(SECRET), now_ms=NOW - 4_000)


def test_params_order_does_not_matter() -> None:
    signed = control.sign(command(params={"b": [1, {"y": 2, "x": 1}], "a": "z"}), SECRET)
    reordered = msgspec.structs.replace(signed, params={"a": "z", "b": [1, {"x": 1, "y": 2}]})
    control.verify(reordered, SECRET, now_ms=NOW)


@pytest.mark.parametrize(
    "changes",
    [
        {"id": "c0ffef"},
        {"command": "stop"},
        {"exchange": "coinbase"},
        {"issued_at": NOW + 1},
        {"params": {"symbol": "ETHUSDT", "tier": 1, "note": "é"}},
        {"params": {}},
    ],
)
def test_any_tampered_field_breaks_the_signature(changes: dict[str, object]) -> None:
    tampered = msgspec.structs.replace(control.sign(command(), SECRET), **changes)
    assert reason(tampered).startswith("bad signature")


def test_a_wrong_secret_or_a_mangled_signature_is_refused() -> None:
    signed = control.sign(command(), "another secret")
    assert reason(signed).startswith("bad signature")
    good = control.sign(command(), SECRET).signature
    assert reason(command(signature=good[:-1] + ("0" if good[-1] != "0" else "1"))).startswith(
        "bad signature"
    )
    assert reason(command(signature="zz" * 32)).startswith("bad signature")
    control.verify(command(signature=good.upper()), SECRET, now_ms=NOW)  # hex case is free


def test_unsigned_commands_are_refused() -> None:
    assert reason(command()) == "unsigned command refused"


def test_stale_and_future_commands_are_refused() -> None:
    signed = control.sign(command(), SECRET)
    assert reason(signed, now_ms=NOW + 30_001).startswith("stale command refused")
    assert reason(signed, now_ms=NOW - 5_001).startswith("command from the future refused")
    with pytest.raises(AuthenticationError, match="stale"):
        control.verify(signed, SECRET, now_ms=NOW + 2_000, max_age_ms=1_000)


def test_without_a_secret_everything_is_refused_with_a_clear_reason() -> None:
    signed = control.sign(command(), SECRET)
    for secret in ("", Secret("")):
        with pytest.raises(AuthenticationError) as info:
            control.verify(signed, secret, now_ms=NOW)
        assert str(info.value) == (
            "control commands are disabled: LIVERMORE_CONTROL_SECRET is not set"
        )
        with pytest.raises(AuthenticationError, match="disabled"):
            control.sign(command(), secret)


@pytest.mark.parametrize(
    "changes",
    [{"id": ""}, {"id": "has:colon"}, {"id": "x" * 129}, {"command": ""}, {"exchange": ""}],
)
def test_malformed_commands_are_refused(changes: dict[str, object]) -> None:
    signed = control.sign(command(**changes), SECRET)
    assert reason(signed).startswith("malformed command")


def test_reasons_never_contain_the_secret_or_the_expected_signature() -> None:
    good = control.sign(command(), SECRET).signature
    for cmd, now in [(command(signature="a" * 64), NOW), (control.sign(command(), SECRET), 0)]:
        text = reason(cmd, now_ms=now)
        assert SECRET not in text and good not in text


def test_garbage_on_the_channel_is_a_malformed_command() -> None:
    for raw in (b"not json", b"[]", b'{"id": 1}'):
        with pytest.raises(AuthenticationError, match="malformed command"):
            control.decode_command(raw)


def test_new_commands_have_unique_valid_ids() -> None:
    a, b = control.new_command("start", "coinbase"), control.new_command("start", "coinbase")
    assert a.id != b.id
    control.verify(control.sign(a, SECRET), SECRET, now_ms=a.issued_at)
