"""The server's TLS certificate: the operator's, or a self-signed one generated on first run."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from callto.store.private import private_dir


def ensure_certificate(tls_dir: Path, hostnames: list[str] | None = None) -> tuple[Path, Path]:
    """Return (certificate, key) paths in ``tls_dir``, generating a self-signed pair if missing."""
    cert_path, key_path = tls_dir / "server.crt", tls_dir / "server.key"
    if cert_path.is_file() and key_path.is_file():
        return cert_path, key_path
    private_dir(tls_dir)
    names = [socket.gethostname(), "localhost", *(hostnames or [])]
    addresses = ["127.0.0.1", "::1"]
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "callto (self-signed)")])
    now = dt.datetime.now(dt.UTC)
    san = [x509.DNSName(n) for n in dict.fromkeys(names) if n] + [
        x509.IPAddress(ipaddress.ip_address(a)) for a in addresses
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(key_path, key_bytes)
    # The certificate is public, but 0600 too: nobody but the server needs it from this folder.
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def fingerprint(cert_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()
