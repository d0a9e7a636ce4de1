"""The sim clock and the venues' number/time spellings."""

from __future__ import annotations

from services.sim.clock import SimClock
from services.sim.formats import fixed8, go_time, price8, rfc3339, rfc3339_us, trimmed
from services.sim.jwt import JwtError, verify_jwt


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_clock_runs_speed_times_faster_and_only_forward() -> None:
    mono = FakeMonotonic()
    clock = SimClock(start_ms=1_000_000, speed=60, monotonic=mono)
    assert clock.now_ms() == 1_000_000
    mono.now += 1.5
    assert clock.now_ms() == 1_000_000 + 90_000
    assert clock.real_delay(1_000_000 + 90_000 + 60_000) == 1.0
    clock.advance_to(2_000_000)
    assert clock.now_ms() == 2_000_000
    clock.advance_to(1_500_000)  # never backwards
    assert clock.now_ms() == 2_000_000


def test_clock_default_start_is_aligned_to_the_minute() -> None:
    assert SimClock().start_ms % 60_000 == 0


def test_binance_numbers_have_eight_decimals() -> None:
    assert fixed8(35_270_000) == "0.35270000"
    assert fixed8(1_234_500_000_000) == "12345.00000000"
    assert price8(4_863_067, 2) == "48630.67000000"


def test_coinbase_numbers_are_trimmed() -> None:
    assert trimmed(6_631_240, 2) == "66312.4"
    assert trimmed(35_582_896_243) == "355.82896243"
    assert trimmed(100_000_000) == "1"


def test_times() -> None:
    assert rfc3339(1_686_341_975.25) == "2023-06-09T20:19:35.25Z"  # trailing zeros trimmed
    assert rfc3339(1_686_341_975.0) == "2023-06-09T20:19:35Z"
    assert rfc3339_us(1_565_815_347_265_000) == "2019-08-14T20:42:27.265000Z"
    assert go_time(1_687_552_316.121961769, 91717.525857105).startswith("2023-06-23 20:31:56.12196")
    assert go_time(1.0, 2.5).endswith(" +0000 UTC m=+2.500000000")


def test_jwt_requires_structure_and_checks_signature_when_keyed() -> None:
    import base64
    import json

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    key = ec.generate_private_key(ec.SECP256R1())
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    head = b64(json.dumps({"alg": "ES256", "kid": "k"}).encode())
    body = b64(json.dumps({"sub": "k", "iss": "cdp", "exp": 4_000_000_000}).encode())
    r, s = decode_dss_signature(key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256())))
    token = f"{head}.{body}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
    assert verify_jwt(token, pem)["iss"] == "cdp"
    forged = f"{head}.{body}.{b64(bytes(64))}"
    assert verify_jwt(forged)["sub"] == "k"  # no key configured: structure only
    for bad in (forged, "not-a-jwt", f"{head}.{body}"):
        try:
            verify_jwt(bad, pem)
        except JwtError:
            continue
        raise AssertionError(f"accepted {bad!r}")
