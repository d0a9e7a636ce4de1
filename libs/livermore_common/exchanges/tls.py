"""Client TLS contexts for the venues: the system's trust store, plus an optional CA file.

`AdapterOptions.ca_file` adds certificates (e.g. the simulator's self-signed one) to what the
system trusts; hostname checking and certificate verification stay on in every case. Contexts are
built once per file (loading the system store takes milliseconds) and shared by REST and
WebSocket connections.
"""

from __future__ import annotations

import functools
import ssl


@functools.lru_cache(maxsize=8)
def _context(ca_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context()  # system trust, CERT_REQUIRED, check_hostname
    context.load_verify_locations(cafile=ca_file)
    return context


def client_context(ca_file: str | None) -> ssl.SSLContext | None:
    """The context trusting `ca_file` besides the system store; None = library defaults."""
    return _context(ca_file) if ca_file else None
