"""Request signing: Binance HMAC-SHA256 query signatures and Coinbase CDP ES256 JWTs.

Secrets are only ever arguments here; nothing in this module logs or stores them.
Coinbase JWT (Advanced Trade "API key authentication"): header {alg ES256, kid key name, nonce,
typ JWT}; claims {sub key name, iss "cdp", nbf now, exp now+120, uri "METHOD host/path"} where
`uri` is present for REST requests only (WebSocket JWTs omit it). A new JWT per request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from livermore_common.errors import AuthenticationError

JWT_LIFETIME_S = 120
JWT_ISSUER = "cdp"


# ---- Binance -----------------------------------------------------------------------------------


def hmac_sha256_hex(secret: str, payload: str) -> str:
    """Binance's signature: hex HMAC-SHA256 of the exact query string with the secret key."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def binance_signed_query(
    params: Mapping[str, Any], secret: str, *, timestamp_ms: int, recv_window_ms: int = 5000
) -> str:
    """`params` + recvWindow + timestamp, url-encoded in that order, then `&signature=`."""
    query = urlencode({**params, "recvWindow": recv_window_ms, "timestamp": timestamp_ms})
    return f"{query}&signature={hmac_sha256_hex(secret, query)}"


# ---- Coinbase ----------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _load_ec_key(pem: str) -> ec.EllipticCurvePrivateKey:
    # Keys pasted into environment variables often carry literal "\n" instead of newlines.
    text = pem.replace("\\n", "\n").strip()
    try:
        key = load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError):
        raise AuthenticationError("Coinbase API secret is not a PEM EC private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise AuthenticationError("Coinbase API secret must be an ECDSA P-256 key (ES256)")
    return key


def format_jwt_uri(method: str, host: str, path: str) -> str:
    """The `uri` claim: "GET api.coinbase.com/api/v3/brokerage/accounts" (no scheme, no query)."""
    return f"{method.upper()} {host}{path.split('?', 1)[0]}"


def coinbase_jwt(
    key_name: str,
    private_key_pem: str,
    *,
    uri: str | None = None,
    now: int | None = None,
    nonce: str | None = None,
) -> str:
    """An ES256 JWT for a CDP API key; `uri` for REST (see `format_jwt_uri`), None for WS."""
    key = _load_ec_key(private_key_pem)
    issued = int(time.time()) if now is None else now
    header = {
        "alg": "ES256",
        "kid": key_name,
        "nonce": nonce or secrets.token_hex(16),
        "typ": "JWT",
    }
    claims: dict[str, Any] = {
        "sub": key_name,
        "iss": JWT_ISSUER,
        "nbf": issued,
        "exp": issued + JWT_LIFETIME_S,
    }
    if uri is not None:
        claims["uri"] = uri
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    der = key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    # JWS wants the raw 64-byte r||s, not the DER structure `cryptography` returns.
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input}.{_b64url(signature)}"
