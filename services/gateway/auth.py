"""Bearer-token authentication for /api, and the signed session cookie the live feed accepts.

Browsers' EventSource cannot send an Authorization header, so `POST /api/session` (itself
bearer-authenticated) sets an HttpOnly, SameSite=Strict cookie holding an expiry and an HMAC of
it keyed by the token. The cookie is accepted on `GET /api/events` only, so it cannot be used to
forge a start/stop from another site; the raw token never sits in a cookie or a URL (URLs end up in
access logs and browser history).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from livermore_common.config import Secret

SESSION_COOKIE = "livermore_session"
_COOKIE_CONTEXT = b"livermore-gateway-session-v1:"
# Routes that also accept the session cookie (read-only, and needed by EventSource).
COOKIE_PATHS = frozenset({"/api/events"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def unauthorized(reason: str) -> web.Response:
    return web.json_response(
        {"error": reason}, status=401, headers={"WWW-Authenticate": 'Bearer realm="livermore"'}
    )


def token_matches(candidate: str, token: Secret) -> bool:
    """Constant-time comparison (over bytes, so non-ASCII input cannot raise)."""
    return hmac.compare_digest(candidate.encode(), token.reveal().encode())


def _cookie_mac(token: Secret, expires_at: int) -> str:
    key = token.reveal().encode()
    return hmac.new(key, _COOKIE_CONTEXT + str(expires_at).encode(), hashlib.sha256).hexdigest()


def make_session_cookie(token: Secret, ttl_seconds: int, *, now: float | None = None) -> str:
    expires_at = int((time.time() if now is None else now) + ttl_seconds)
    return f"{expires_at}.{_cookie_mac(token, expires_at)}"


def session_cookie_valid(value: str, token: Secret, *, now: float | None = None) -> bool:
    expires_text, _, mac = value.partition(".")
    if not expires_text.isdigit() or not mac:
        return False
    expires_at = int(expires_text)
    if expires_at < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(mac.encode(), _cookie_mac(token, expires_at).encode())


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def check_request(request: web.Request, token: Secret) -> str | None:
    """None when the request is authenticated, else the reason for a 401."""
    presented = _bearer(request)
    if presented is None and request.path in COOKIE_PATHS:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie is not None:
            return None if session_cookie_valid(cookie, token) else "session expired or invalid"
    if presented is None:
        return "missing bearer token (send 'Authorization: Bearer <token>')"
    if presented == "":
        return "malformed Authorization header (expected 'Bearer <token>')"
    if not token_matches(presented, token):
        return "invalid token"
    return None


def auth_middleware(token: Secret) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/api" or request.path.startswith("/api/"):
            reason = check_request(request, token)
            if reason is not None:
                return unauthorized(reason)
        return await handler(request)

    return middleware
