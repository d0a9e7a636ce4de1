"""Coinbase CDP JWT checks: structure always; the ES256 signature when a public key is set."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


class JwtError(ValueError):
    """The token is missing, malformed, expired or wrongly signed (never says which secret)."""


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify_jwt(token: str, public_key_pem: str = "", *, now: float | None = None) -> dict[str, Any]:
    """Claims of a well-formed, unexpired ES256 JWT; the signature is checked only when a PEM
    public key is configured (without one the simulator accepts any well-formed token)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtError("malformed token")
    try:
        header = json.loads(_b64(parts[0]))
        claims = json.loads(_b64(parts[1]))
        signature = _b64(parts[2])
    except ValueError:
        raise JwtError("malformed token") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JwtError("malformed token")
    if header.get("alg") != "ES256":
        raise JwtError("unsupported algorithm")
    current = time.time() if now is None else now
    exp = claims.get("exp")
    if isinstance(exp, int | float) and exp < current:
        raise JwtError("token expired")
    if public_key_pem:
        _check_signature(f"{parts[0]}.{parts[1]}".encode(), signature, public_key_pem)
    return claims


def _check_signature(message: bytes, signature: bytes, public_key_pem: str) -> None:
    if len(signature) != 64:
        raise JwtError("bad signature")
    key = serialization.load_pem_public_key(public_key_pem.encode())
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise JwtError("configured key is not an EC key")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    try:
        key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise JwtError("bad signature") from None
