"""The parser's regex-free fast paths (issue 18) accept and refuse exactly what the RFC 3261 regexes do."""

from __future__ import annotations

import random

import pytest

from callto.sip.errors import SipParseError
from callto.sip.grammar import (
    AUTH_PARAM_RE,
    CALLID_RE,
    CSEQ_RE,
    GEN_PARAM_RE,
    parse_auth,
    parse_call_id,
    parse_cseq,
    parse_params,
    parse_via,
    unquote,
)
from callto.sip.message import parse_message


def _params_by_regex(text: str, pos: int) -> tuple[tuple[str, str | None], ...] | str:
    params = []
    while pos < len(text):
        m = GEN_PARAM_RE.match(text, pos)
        if m is None:
            if not text[pos:].strip():
                break
            return "error"
        params.append((m.group("name"), m.group("value")))
        pos = m.end()
    return tuple(params)


def test_parameters_parse_as_the_generic_param_regex_does_on_random_input() -> None:
    rng = random.Random(18)
    alphabet = "ab=;;x \t\"[]:1.-é"
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        pos = rng.randint(0, len(text))
        try:
            got: object = parse_params(text, pos, "X")
        except SipParseError:
            got = "error"
        assert got == _params_by_regex(text, pos), (text, pos)


def test_call_ids_are_accepted_exactly_when_the_callid_regex_matches() -> None:
    rng = random.Random(4475)
    alphabet = "aZ9-.@@ ;=\t\"<>[]{}?/\\:é,"
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        try:
            parse_call_id(text)
            ok = True
        except SipParseError:
            ok = False
        assert ok == (CALLID_RE.fullmatch(text.strip()) is not None), text


@pytest.mark.parametrize("text", ["1 REGISTER", "4294967295 INVITE", "1  REGISTER", "1\tBYE", "01 FOO", "1 ", "x BYE"])
def test_cseq_fast_path_agrees_with_the_cseq_regex(text: str) -> None:
    m = CSEQ_RE.fullmatch(text)
    if m is None:
        with pytest.raises(SipParseError):
            parse_cseq(text)
    else:
        cseq = parse_cseq(text)
        assert (cseq.seq, cseq.method) == (int(m.group("seq")), m.group("method"))


def test_cseq_number_above_32_bits_is_refused_on_the_fast_path_too() -> None:
    with pytest.raises(SipParseError, match="2\\*\\*32-1"):
        parse_cseq("4294967296 REGISTER")


def test_a_remembered_via_sent_by_still_checks_the_parameters_after_it() -> None:
    first = parse_via("SIP/2.0/UDP 10.9.8.7:5070;branch=z9hG4bK-1;rport")
    again = parse_via("SIP/2.0/UDP 10.9.8.7:5070;branch=z9hG4bK-2")
    assert (again.transport, again.host, again.port, again.branch) == ("UDP", "10.9.8.7", 5070, "z9hG4bK-2")
    assert first.has_rport and not again.has_rport
    with pytest.raises(SipParseError):
        parse_via("SIP/2.0/UDP 10.9.8.7:5070;branch=")
    with pytest.raises(SipParseError):
        parse_via("SIP/2.0/UDP 10.9.8.7:5070;rport=99999")


@pytest.mark.parametrize(
    ("start", "status"),
    [
        ("REGISTER sip:a.test SIP/2.0", None),
        ("REGISTER sip:a.test SIP/3.0", 505),
        ("REGISTER  sip:a.test SIP/2.0", 400),
        ("REGISTER sip:a.test sip/2.0", None),
        ("REG@STER sip:a.test SIP/2.0", 400),
    ],
)
def test_request_line_fast_path_keeps_the_answers_of_the_request_line_regex(start: str, status: int | None) -> None:
    data = (
        f"{start}\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-x\r\nFrom: <sip:a@a.test>;tag=1\r\n"
        "To: <sip:a@a.test>\r\nCall-ID: c1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    if status is None:
        assert parse_message(data).version == "SIP/2.0"  # type: ignore[union-attr]
    else:
        with pytest.raises(SipParseError) as err:
            parse_message(data)
        assert err.value.sip_status == status


def _auth_by_regex(text: str) -> dict[str, str] | str:
    pos, params = len("Digest "), {}
    while pos < len(text):
        m = AUTH_PARAM_RE.match(text, pos)
        if m is None or m.group("name").lower() in params:
            return "error"
        value = m.group("value")
        params[m.group("name").lower()] = unquote(value) if value[:1] == '"' else value
        pos = m.end()
    return params


def test_auth_params_parse_as_the_auth_param_regex_does_on_random_input() -> None:
    rng = random.Random(7616)
    names = ["a", "B", "nc", "x-y", "", "a b", "é"]
    values = ["1", "tok", '"q"', '"a,b"', '"a b"', '"\\x"', '""', "", "a b", 'x"y', "=", '"é"', '"\t"', "\xa0"]
    blanks = ["", " ", "\t"]
    accepted = 0
    for _ in range(20_000):
        parts = [
            rng.choice(blanks) + rng.choice(names) + rng.choice(blanks) + "=" + rng.choice(blanks)
            + rng.choice(values) + rng.choice(blanks)
            for _ in range(rng.randint(1, 4))
        ]
        text = "Digest " + ",".join(parts) + rng.choice(["", ",", " "])
        try:
            got: object = parse_auth(text, "Authorization")[1]
        except SipParseError:
            got = "error"
        want = _auth_by_regex(text)
        assert got == want, text
        accepted += want != "error"
    assert accepted > 1000  # the inputs exercise acceptance, not only refusals


def test_a_digest_response_as_sipp_sends_it_parses_to_its_fields() -> None:
    text = (
        'Digest username="b00001",realm="callto.test",cnonce="6b8b4567",nc=00000001,qop=auth,'
        'uri="sip:callto.test",nonce="AAONfqTG_H-NmE",response="0123456789abcdef",algorithm=MD5'
    )
    scheme, params = parse_auth(text, "Authorization")
    assert scheme == "Digest"
    assert params == {
        "username": "b00001", "realm": "callto.test", "cnonce": "6b8b4567", "nc": "00000001", "qop": "auth",
        "uri": "sip:callto.test", "nonce": "AAONfqTG_H-NmE", "response": "0123456789abcdef", "algorithm": "MD5",
    }
