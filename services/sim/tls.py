"""TLS for the simulator: a self-signed certificate made at start, for `wss://` and `https://`.

The certificate is its own CA (basic constraints CA:true) and names the hosts clients use in
its subject alternative names (`localhost`, `127.0.0.1`, `::1`, the listen and advertised
hosts), so a client that trusts the PEM file (e.g. the adapters' `AdapterOptions.ca_file`)
verifies it normally: hostname and chain, nothing disabled. The key never leaves the process
(it is loaded from a private temporary file that is deleted at once); the certificate is written
to a file so clients can be pointed at it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_VALID = datetime.timedelta(days=7)


def _names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for host in dict.fromkeys(["localhost", "127.0.0.1", "::1", *hosts]):
        if not host or host in ("0.0.0.0", "::"):
            continue
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            out.append(x509.DNSName(host))
    return out


def self_signed(hosts: Iterable[str] = ()) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) of a fresh P-256 certificate for `hosts`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "livermore simulator")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
        .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class SimTls:
    """A server SSL context with a fresh self-signed certificate; `ca_file` is its PEM."""

    def __init__(self, hosts: Iterable[str] = (), directory: str | None = None) -> None:
        cert_pem, key_pem = self_signed(hosts)
        self._dir = tempfile.TemporaryDirectory(prefix="livermore-sim-tls-", dir=directory)
        self.ca_file = str(Path(self._dir.name) / "sim-ca.pem")
        Path(self.ca_file).write_bytes(cert_pem)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        key_path = Path(self._dir.name) / "key.pem"
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(key_pem)
            self.context.load_cert_chain(self.ca_file, key_path)
        finally:
            key_path.unlink(missing_ok=True)

    def cleanup(self) -> None:
        self._dir.cleanup()
