"""structlog setup: JSON lines in deployment, readable console locally; secrets are never logged."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_REDACT = ("secret", "password", "token", "api_key", "private_key", "signature", "credentials")


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if any(word in key.lower() for word in _REDACT):
            event[key] = "***"
    return event


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is *now*. A logger that kept the stream object it was
    configured with would write to a closed file once that stream is replaced (a test runner's
    capture, a daemonising wrapper) and turn every log call into an error."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The stdlib counterpart: resolves `sys.stderr` at every record."""

    def __init__(self) -> None:
        super().__init__(_CurrentStderr())


def configure_logging(*, fmt: str = "console", level: str = "info", service: str = "") -> None:
    """Configure structlog and the stdlib root logger once per process (stderr)."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(
        handlers=[_CurrentStderrHandler()], level=numeric, format="%(message)s", force=True
    )
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    if service:
        structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str = "", **context: Any) -> Any:
    """A bound logger; `context` (exchange, symbol, ...) is attached to every line."""
    log = structlog.get_logger(name) if name else structlog.get_logger()
    return log.bind(**context) if context else log
