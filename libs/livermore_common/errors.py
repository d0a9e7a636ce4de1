"""Livermore's error tree. Adapters translate HTTP/WS errors into it at the edge.

    LivermoreError
    ├── TransientError          retry with backoff (network, 5xx, timeouts)
    │   └── RateLimitedError    retry after `retry_after` seconds (HTTP 429/418, WS limits)
    └── PermanentError          do not retry (bad input, unknown exchange, auth refused)
        ├── ConfigurationError  a setting or database row is wrong
        ├── UnknownExchangeError
        ├── ProtocolError       a message does not match the exchange's protocol
        └── AuthenticationError a control command or API credential was refused

Only the top-level runner catches bare `Exception`.
"""

from __future__ import annotations


class LivermoreError(Exception):
    """Base of every error Livermore raises on purpose."""


class TransientError(LivermoreError):
    """Worth retrying with backoff."""


class RateLimitedError(TransientError):
    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(LivermoreError):
    """Retrying will not help."""


class ConfigurationError(PermanentError):
    pass


class UnknownExchangeError(PermanentError):
    pass


class ProtocolError(PermanentError):
    pass


class AuthenticationError(PermanentError):
    pass
