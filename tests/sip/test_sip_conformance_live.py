"""RFC 4475 torture messages sent over UDP to a running SipServer on 127.0.0.1.

Each message is rewritten first (Request-URI host -> our domain, top Via -> this test's socket with rport)
so no answer can go to the documentation addresses inside them. Answers are read and checked against what
the manifest asks for, then discarded; after all 49 the server must still answer an OPTIONS.
"""

from __future__ import annotations

import re
import socket

import pytest
from sip_helpers import EXPECTED, REGISTER_ACCOUNTS, RunningServer, TortureCase, corpus_dir, load_corpus, rewrite

from callto.sip.auth import DigestClient
from callto.sip.message import Response, parse_message

_CALL_ID = re.compile(rb"(?im)^(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*)")


def _call_id(data: bytes) -> str | None:
    m = _CALL_ID.search(data)
    return m.group(1).strip().decode("utf-8", "replace") if m else None


def _ack_for(response: Response, ruri: str) -> bytes:
    """ACK for a non-2xx final to INVITE, as the client transaction would send (RFC 3261 17.1.1.3)."""
    h = response.headers
    return (
        f"ACK {ruri} SIP/2.0\r\nVia: {h.get_list('Via')[0]}\r\nFrom: {h.get('From')}\r\nTo: {h.get('To')}\r\n"
        f"Call-ID: {h.get('Call-ID')}\r\nCSeq: {h.get('CSeq', '').split()[0]} ACK\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _read_finals(sock: socket.socket, sent: bytes, quiet: float, server: tuple[str, int]) -> list[Response]:
    """Final answers to ``sent`` (same Call-ID) until ``quiet`` seconds pass; INVITE failures are ACKed."""
    finals = []
    want = _call_id(sent)
    ruri = sent.split(b"\r\n", 1)[0].split(b" ")[1].decode("utf-8", "replace") if b" " in sent[:200] else "sip:x"
    sock.settimeout(quiet)
    while True:
        try:
            data, _ = sock.recvfrom(65535)
        except TimeoutError:
            return finals
        message = parse_message(data, strict=False)
        assert isinstance(message, Response)
        call_id = message.headers.get("Call-ID")
        if message.status < 200 or (call_id is not None and call_id != want):
            continue  # a provisional, or a retransmission for an earlier message
        cseq = message.headers.get("CSeq") or ""
        if cseq.endswith("INVITE") and message.status >= 300 and "Via" in message.headers:
            sock.sendto(_ack_for(message, ruri), server)
        if message.status in {r.status for r in finals}:
            continue  # our ACK may cross a retransmission
        finals.append(message)
        sock.settimeout(0.15)


@pytest.mark.timeout(60)
def test_switch_answers_all_49_torture_messages_and_keeps_answering(sip_server: RunningServer) -> None:
    if not corpus_dir().is_dir():
        print(f"RFC 4475 corpus not found at {corpus_dir()}; nothing to send")
        pytest.skip(f"RFC 4475 corpus not found at {corpus_dir()}")
    cases: list[TortureCase] = load_corpus()
    assert len(cases) == 49
    failures = []
    for case in cases:
        # one socket per message: the corpus reuses branch values, and with the same sent-by two messages
        # would rightly be taken for retransmissions of one transaction
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            host, port = sock.getsockname()
            data = rewrite(case, host, port)
            sock.sendto(data, ("127.0.0.1", sip_server.port))
            expected = EXPECTED[case.name]
            finals = _read_finals(sock, data, 0.3 if expected is None else 5.0, ("127.0.0.1", sip_server.port))
            got = [r.status for r in finals]
            if expected is None and got:
                failures.append(f"{case.name}: expected no answer, got {got}")
            elif expected is not None and (len(got) != 1 or got[0] not in expected):
                failures.append(f"{case.name}: expected one of {sorted(expected)}, got {got}")
    assert not failures, "\n".join(failures)
    assert sip_server.options_ok()


@pytest.mark.timeout(60)
def test_torture_registers_complete_with_digest_and_store_contacts_exactly(sip_server: RunningServer) -> None:
    if not corpus_dir().is_dir():
        pytest.skip(f"RFC 4475 corpus not found at {corpus_dir()}")
    cases = {c.name: c for c in load_corpus()}
    for name, (username, contacts) in REGISTER_ACCOUNTS.items():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            host, port = sock.getsockname()
            case = cases[name]
            first = rewrite(case, host, port)
            sock.sendto(first, ("127.0.0.1", sip_server.port))
            [challenge] = _read_finals(sock, first, 5.0, ("127.0.0.1", sip_server.port))
            assert challenge.status == 401
            client = DigestClient(username, f"pw-{username}")
            auth = client.authorization(challenge.headers.get_all("WWW-Authenticate"), "REGISTER", "sip:x")
            assert auth is not None
            retry = rewrite(case, host, port, branch_suffix="auth")
            cut = retry.find(b"\r\n")
            retry = retry[:cut] + f"\r\nAuthorization: {auth}".encode() + retry[cut:]
            sock.sendto(retry, ("127.0.0.1", sip_server.port))
            [ok] = _read_finals(sock, retry, 5.0, ("127.0.0.1", sip_server.port))
            assert ok.status == 200, f"{name}: {ok.status} {ok.reason}"
            account = sip_server.credentials.lookup(username)
            assert account is not None
            bindings = sip_server.call(lambda a=account: sip_server.server.registrar.bindings(a.device_id))
            by_contact = {b.contact: b for b in bindings}
            for contact in contacts:
                assert contact in by_contact, f"{name}: {contact} not in {list(by_contact)}"
                assert (by_contact[contact].source_host, by_contact[contact].source_port) == (host, port)
    assert sip_server.options_ok()
