"""RFC 4475 torture messages against the pure core (endpoint + registrar, no sockets), one test per message."""

from __future__ import annotations

import pytest
from sip_helpers import EXPECTED, REGISTER_ACCOUNTS, CoreHarness, TortureCase, corpus_dir, load_corpus, rewrite

from callto.sip.auth import DigestClient
from callto.sip.endpoint import RequestReceived

CLIENT = ("127.0.0.1", 40000)

if corpus_dir().is_dir():
    CASES = load_corpus()
else:  # pragma: no cover - depends on the checkout
    print(f"RFC 4475 corpus not found at {corpus_dir()}: conformance tests skipped")
    CASES = []


def test_corpus_has_49_messages_with_expectations() -> None:
    if not CASES:
        pytest.skip(f"RFC 4475 corpus not found at {corpus_dir()}")
    assert len(CASES) == 49
    assert {c.name for c in CASES} == set(EXPECTED)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_torture_message_gets_the_answer_rfc4475_asks_for(case: TortureCase) -> None:
    core = CoreHarness.create()
    data = rewrite(case, *CLIENT)
    responses = [r for r in core.feed(data, CLIENT, now=1000.0) if r.status >= 200]
    expected = EXPECTED[case.name]
    if expected is None:
        assert responses == [], f"{case.name}: expected silence, got {responses}"
    else:
        assert len(responses) == 1, f"{case.name}: expected one answer, got {responses}"
        assert responses[0].status in expected, f"{case.name}: {responses[0].status} {responses[0].reason}"
    if case.category == "valid" and not case.is_response:
        assert all(r.status != 400 for r in responses)
    # the core still answers a keepalive afterwards
    ping = (
        f"OPTIONS sip:{core.endpoint.config.domain} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKping;rport\r\n"
        "From: <sip:ping@127.0.0.1>;tag=1\r\nTo: <sip:ping@127.0.0.1>\r\nCall-ID: ping-1\r\nCSeq: 1 OPTIONS\r\n"
        "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    assert [r.status for r in core.feed(ping, CLIENT, now=1001.0)] == [200]


def test_bad_extension_lists_every_required_option() -> None:
    case = next((c for c in CASES if c.name == "bext01"), None)
    if case is None:
        pytest.skip("corpus absent")
    [resp] = CoreHarness.create().feed(rewrite(case, *CLIENT), CLIENT, now=1.0)
    assert resp.status == 420
    assert resp.headers.get_list("Unsupported") == ["nothingSupportsThis", "nothingSupportsThisEither"]


def test_answers_copy_via_with_received_and_rport_of_the_source() -> None:
    case = next((c for c in CASES if c.name == "lwsdisp"), None)
    if case is None:
        pytest.skip("corpus absent")
    [resp] = CoreHarness.create().feed(rewrite(case, *CLIENT), CLIENT, now=1.0)
    top = resp.vias[0]
    assert top.rport == CLIENT[1]
    assert top.received == CLIENT[0]
    assert resp.call_id == "lwsdisp.1234abcd@funky.example.com"
    assert resp.to.tag


def test_partly_broken_request_answer_copies_what_parsed() -> None:
    case = next((c for c in CASES if c.name == "insuf"), None)
    if case is None:
        pytest.skip("corpus absent")
    [resp] = [r for r in CoreHarness.create().feed(rewrite(case, *CLIENT), CLIENT, now=1.0) if r.status >= 200]
    assert resp.status == 400
    assert "From" in resp.reason
    assert resp.headers.get("CSeq") == "193942 INVITE"
    assert resp.headers.get("Via") is not None


@pytest.mark.parametrize("name", sorted(REGISTER_ACCOUNTS))
def test_torture_register_stores_contacts_exactly(name: str) -> None:
    case = next((c for c in CASES if c.name == name), None)
    if case is None:
        pytest.skip("corpus absent")
    username, contacts = REGISTER_ACCOUNTS[name]
    core = CoreHarness.create()
    [challenge] = core.feed(rewrite(case, *CLIENT), CLIENT, now=10.0)
    assert challenge.status == 401
    assert [v.split("algorithm=")[1].split(",")[0] for v in challenge.headers.get_all("WWW-Authenticate")] == [
        "SHA-256",
        "MD5",
    ]
    client = DigestClient(username, f"pw-{username}")
    ruri = f"sip:{core.endpoint.config.domain}"
    auth = client.authorization(challenge.headers.get_all("WWW-Authenticate"), "REGISTER", ruri)
    assert auth is not None and "algorithm=SHA-256" in auth
    retry = rewrite(case, *CLIENT, branch_suffix="r2")
    head_end = retry.find(b"\r\n")
    retry = retry[:head_end] + f"\r\nAuthorization: {auth}".encode() + retry[head_end:]
    [ok] = core.feed(retry, CLIENT, now=11.0)
    assert ok.status == 200, ok.reason
    device = core.registrar.credentials.lookup(username)
    assert device is not None
    stored = sorted(b.contact for b in core.registrar.bindings(device.device_id))
    assert stored == sorted(contacts)
    assert any(isinstance(e, RequestReceived) for e in core.events)
