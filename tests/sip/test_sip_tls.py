"""SIP over TLS: a running SipServer with a self-signed certificate, a real TLS client on loopback."""

from __future__ import annotations

import datetime
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sip_helpers import DOMAIN, running_sip_server

from callto.sip.auth import DigestClient
from callto.sip.message import Response, StreamBuffer
from callto.sip.ports import SipAccount, StaticCredentials


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(DOMAIN)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _request(method: str, port: int, cseq: int, extra: str = "") -> bytes:
    return (
        f"{method} sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:{port};branch=z9hG4bKtls{cseq};rport\r\n"
        f"From: <sip:tls-1@{DOMAIN}>;tag=t\r\nTo: <sip:tls-1@{DOMAIN}>\r\nCall-ID: tls-call\r\n"
        f"CSeq: {cseq} {method}\r\nContact: <sip:tls-1@127.0.0.1:{port};transport=tls>\r\nMax-Forwards: 70\r\n"
        f"{extra}Content-Length: 0\r\n\r\n"
    ).encode()


def _read(sock: ssl.SSLSocket, buffer: StreamBuffer) -> Response:
    while True:
        for item in buffer.feed(sock.recv(65535)):
            assert isinstance(item, Response), item
            if item.status >= 200:
                return item


@pytest.mark.timeout(30)
def test_device_registers_over_tls_and_answers_come_back_on_the_tls_connection(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    creds = StaticCredentials([SipAccount("tls-1", "pw-tls", "dev-tls", "user-tls", "501")])
    gen = running_sip_server(creds, tls_context=server_ctx)
    server = next(gen)
    try:
        client_ctx = ssl.create_default_context(cafile=str(cert))
        with (
            socket.create_connection(("127.0.0.1", server.server.tls_port), timeout=5) as raw,
            client_ctx.wrap_socket(raw, server_hostname=DOMAIN) as sock,
        ):
            port = sock.getsockname()[1]
            buffer = StreamBuffer()
            sock.sendall(_request("OPTIONS", port, 1))
            assert _read(sock, buffer).status == 200
            sock.sendall(_request("REGISTER", port, 2))
            challenge = _read(sock, buffer)
            assert challenge.status == 401
            auth = DigestClient("tls-1", "pw-tls").authorization(
                challenge.headers.get_all("WWW-Authenticate"), "REGISTER", f"sip:{DOMAIN}"
            )
            sock.sendall(_request("REGISTER", port, 3, f"Authorization: {auth}\r\n"))
            assert _read(sock, buffer).status == 200
            [binding] = server.call(lambda: server.server.registrar.bindings("dev-tls"))
            assert binding.source_transport == "tls"
            assert binding.contact == f"sip:tls-1@127.0.0.1:{port};transport=tls"
            assert binding.conn_id is not None
    finally:
        for _ in gen:
            pass
