"""Binance HMAC against the published vector; Coinbase ES256 JWTs verify and carry the claims."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from livermore_common.errors import AuthenticationError
from livermore_common.exchanges import Credentials
from livermore_common.exchanges.signing import (
    binance_signed_query,
    coinbase_jwt,
    format_jwt_uri,
    hmac_sha256_hex,
)


def test_binance_hmac_reproduces_the_published_vector(fixtures_dir: Path) -> None:
    vector = json.loads((fixtures_dir / "binance/hmac_sha256_test_vector.json").read_text())
    assert hmac_sha256_hex(vector["secretKey"], vector["payload"]) == vector["signature"]


def test_binance_signed_query_appends_recv_window_timestamp_and_signature(
    fixtures_dir: Path,
) -> None:
    vector = json.loads((fixtures_dir / "binance/hmac_sha256_test_vector.json").read_text())
    params = dict(parse_qsl(vector["payload"]))
    timestamp, recv = int(params.pop("timestamp")), int(params.pop("recvWindow"))
    query = binance_signed_query(
        params, vector["secretKey"], timestamp_ms=timestamp, recv_window_ms=recv
    )
    assert query == f"{vector['payload']}&signature={vector['signature']}"


def _b64d(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@pytest.fixture(scope="module")
def ec_key() -> tuple[str, ec.EllipticCurvePublicKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    return pem, key.public_key()


def _verify(token: str, public: ec.EllipticCurvePublicKey) -> tuple[dict, dict]:
    header_b64, claims_b64, sig_b64 = token.split(".")
    raw = _b64d(sig_b64)
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    return json.loads(_b64d(header_b64)), json.loads(_b64d(claims_b64))


def test_coinbase_rest_jwt_verifies_and_carries_the_documented_claims(ec_key) -> None:
    pem, public = ec_key
    name = "organizations/org-1/apiKeys/key-1"
    uri = format_jwt_uri("get", "api.coinbase.com", "/api/v3/brokerage/accounts?limit=250")
    token = coinbase_jwt(name, pem, uri=uri, now=1_700_000_000, nonce="abc123")
    header, claims = _verify(token, public)
    assert header == {"alg": "ES256", "kid": name, "nonce": "abc123", "typ": "JWT"}
    assert claims == {
        "sub": name,
        "iss": "cdp",
        "nbf": 1_700_000_000,
        "exp": 1_700_000_120,
        "uri": "GET api.coinbase.com/api/v3/brokerage/accounts",
    }


def test_coinbase_ws_jwt_has_no_uri_and_a_fresh_nonce(ec_key) -> None:
    pem, public = ec_key
    first = coinbase_jwt("k", pem)
    second = coinbase_jwt("k", pem)
    (h1, c1), (h2, _) = _verify(first, public), _verify(second, public)
    assert "uri" not in c1 and h1["nonce"] != h2["nonce"]


def test_tampered_jwt_does_not_verify(ec_key) -> None:
    pem, public = ec_key
    header, _claims, sig = coinbase_jwt("k", pem, uri="GET h/p").split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"sub": "other"}).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidSignature):
        _verify(f"{header}.{forged}.{sig}", public)


def test_escaped_newlines_in_the_pem_are_accepted(ec_key) -> None:
    pem, public = ec_key
    _verify(coinbase_jwt("k", pem.replace("\n", "\\n")), public)


def test_a_bad_key_is_an_authentication_error_without_the_secret() -> None:
    with pytest.raises(AuthenticationError) as info:
        coinbase_jwt(
            "k", "-----BEGIN EC PRIVATE KEY-----\nsupersecret\n-----END EC PRIVATE KEY-----"
        )
    assert "supersecret" not in str(info.value)


def test_credentials_never_show_their_values() -> None:
    creds = Credentials("my-key", "my-secret")
    assert "my-key" not in repr(creds) and "my-secret" not in str(creds)
    assert creds.api_secret.reveal() == "my-secret"
