"""Real peer: sipp registers many devices with digest auth and throws hostile traffic at a running SipServer.

sipp 3.6 (Debian) only computes MD5 digests and answers the first WWW-Authenticate it sees, so these
servers offer MD5 first (``RegistrarConfig.algorithms``); SHA-256-first is covered by baresip and the unit
tests.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sip_helpers import DOMAIN, RunningServer, running_sip_server

from callto.sip.auth import DigestClient
from callto.sip.ports import SipAccount, StaticCredentials
from callto.sip.registrar import DeviceOnline, RegistrarConfig
from support.sipp import run_sipp

pytestmark = pytest.mark.sip

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
DEVICES = 40


@pytest.fixture
def md5_first_server() -> Iterator[RunningServer]:
    if shutil.which("sipp") is None:
        print("sipp is not installed (Debian package sip-tester)")
        pytest.skip("sipp is not installed (Debian package sip-tester)")
    creds = StaticCredentials(
        [SipAccount(f"9{i:03d}", f"pw-{i}", f"dev-{i}", f"user-{i}", f"9{i:03d}") for i in range(DEVICES)]
    )
    yield from running_sip_server(creds, registrar_config=RegistrarConfig(realm=DOMAIN, algorithms=("MD5", "SHA-256")))


def _users_csv(path: Path, count: int, *, hostile_auth: str | None = None) -> Path:
    lines = ["SEQUENTIAL"]
    for i in range(count):
        fields = [f"9{i:03d}", f"[authentication username=9{i:03d} password=pw-{i}]", DOMAIN]
        if hostile_auth is not None:
            fields += [f"[authentication username=9{i:03d} password=wrong]", "x" * 9000, hostile_auth]
        lines.append(";".join(fields))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.timeout(90)
def test_sipp_registers_forty_devices_with_digest_auth(md5_first_server: RunningServer, tmp_path: Path) -> None:
    server = md5_first_server
    result = run_sipp(
        SCENARIOS / "register_auth.xml",
        server.target,
        tmp_path,
        inject_csv=_users_csv(tmp_path / "users.csv", DEVICES),
        calls=DEVICES,
        rate=20,
        timeout=40,
    )
    assert result.ok, result.describe()
    assert result.counter("SuccessfulCall") == DEVICES
    sipp_port = int(result.argv[result.argv.index("-p") + 1])
    registrar = server.server.registrar
    for i in range(DEVICES):
        bindings = server.call(lambda i=i: registrar.bindings(f"dev-{i}"))
        assert len(bindings) == 1, f"dev-{i}: {bindings}"
        # the contact exactly as sipp sent it: user-sipp<call number>, its port, transport=UDP in capitals
        assert bindings[0].contact == f"sip:9{i:03d}-sipp{i + 1}@127.0.0.1:{sipp_port};transport=UDP"
        assert bindings[0].user_agent == "sipp"
    with server.lock:
        online = [e for e in server.events if isinstance(e, DeviceOnline)]
    assert len(online) == DEVICES
    assert server.options_ok()


@pytest.mark.timeout(90)
def test_sipp_hostile_traffic_gets_the_right_answers_and_the_switch_keeps_answering(
    md5_first_server: RunningServer, tmp_path: Path
) -> None:
    server = md5_first_server
    # an Authorization for a nonce of this server, which sipp will send twice (the replay)
    challenges = server.call(lambda: server.server.registrar.digest.challenges(time.time()))
    authorization = DigestClient("9000", "pw-0").authorization(challenges, "REGISTER", f"sip:{DOMAIN}")
    assert authorization is not None
    result = run_sipp(
        SCENARIOS / "hostile.xml",
        server.target,
        tmp_path,
        inject_csv=_users_csv(tmp_path / "users.csv", 1, hostile_auth=f"Authorization: {authorization}"),
        calls=1,
        timeout=30,
    )
    assert result.ok, result.describe() + "\n" + result.messages()[-6000:]
    assert server.options_ok()


@pytest.mark.parametrize(
    ("headers", "answer"),
    [
        (
            "From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCSeq: 1 OPTIONS",
            b"SIP/2.0 400 Bad Request (missing Call-ID header)",
        ),
        (
            "From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: m1\r\nCSeq: 1 INVITE",
            b"SIP/2.0 400 Bad Request (CSeq method does not match the request method)",
        ),
    ],
    ids=["missing-call-id", "cseq-method-mismatch"],
)
def test_broken_request_sipp_cannot_check_gets_400_back_to_its_source(
    sip_server: RunningServer, headers: str, answer: bytes
) -> None:
    # sipp cannot take these: it maps answers to calls by Call-ID and checks the CSeq method of answers
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2.0)
        port = sock.getsockname()[1]
        sock.sendto(
            (
                f"OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKbroken;rport\r\n"
                f"{headers}\r\nContent-Length: 0\r\n\r\n"
            ).encode(),
            ("127.0.0.1", sip_server.port),
        )
        data, _ = sock.recvfrom(65535)
    assert data.startswith(answer)
    assert f"rport={port}".encode() in data
    assert sip_server.options_ok()


@pytest.mark.timeout(90)
def test_register_flood_is_answered_and_memory_stays_bounded(sip_server: RunningServer) -> None:
    """5000 unauthenticated REGISTERs (bursts of 100, distinct Call-IDs): each challenged, none stored."""
    answered = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        for burst in range(50):
            for i in range(burst * 100, burst * 100 + 100):
                sock.sendto(
                    (
                        f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
                        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKf{i};rport\r\n"
                        f"From: <sip:9999@{DOMAIN}>;tag={i}\r\nTo: <sip:9999@{DOMAIN}>\r\nCall-ID: flood-{i}\r\n"
                        f"CSeq: 1 REGISTER\r\nContact: <sip:x{i}@127.0.0.1:{port}>\r\nContent-Length: 0\r\n\r\n"
                    ).encode(),
                    ("127.0.0.1", sip_server.port),
                )
            sock.settimeout(3.0)
            got = 0
            try:
                while got < 100:
                    data, _ = sock.recvfrom(65535)
                    assert data.startswith(b"SIP/2.0 401 "), data[:40]
                    got += 1
            except TimeoutError:
                pass
            answered += got
    assert answered >= 4750, f"{answered} of 5000 answered"
    registrar = sip_server.server.registrar
    assert sip_server.call(lambda: len(registrar.digest.counter)) == 0  # challenges keep no state
    assert sip_server.call(lambda: registrar.online_devices()) == set()
    endpoint = sip_server.server.endpoint
    assert endpoint is not None
    # each answered transaction lingers for timer J (32 s) to absorb retransmissions, under a hard cap
    assert sip_server.call(lambda: endpoint.transaction_count) <= endpoint.config.max_transactions
    assert sip_server.options_ok()


@pytest.mark.timeout(60)
def test_sipp_registers_over_tcp_and_answers_come_back_on_the_connection(
    md5_first_server: RunningServer, tmp_path: Path
) -> None:
    server = md5_first_server
    result = run_sipp(
        SCENARIOS / "register_auth.xml",
        server.target,
        tmp_path,
        inject_csv=_users_csv(tmp_path / "users.csv", 5),
        calls=5,
        rate=10,
        transport="t1",
        timeout=20,
    )
    assert result.ok, result.describe()
    registrar = server.server.registrar
    for i in range(5):
        [binding] = server.call(lambda i=i: registrar.bindings(f"dev-{i}"))
        assert binding.source_transport == "tcp"
        assert binding.contact.endswith(";transport=TCP")
        assert binding.conn_id is not None
