"""Parsing and serialising SIP messages: header model, URIs, name-addr, Via, framing, limits, error statuses."""

from __future__ import annotations

import pytest

from callto.sip.errors import SipMessageError, SipParseError
from callto.sip.grammar import AbsoluteURI, SipURI, TelURI, parse_name_addr, parse_uri, parse_via, split_list
from callto.sip.message import (
    Headers,
    Limits,
    Request,
    Response,
    StreamBuffer,
    make_response,
    parse_message,
)

INVITE = (
    b"INVITE sip:201@pbx.example.com SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Via: SIP/2.0/TCP proxy.example.com;branch=z9hG4bKaaa, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKbbb\r\n"
    b"Max-Forwards: 70\r\n"
    b'f: "Alice \\"A\\" Liddell" <sip:alice@example.com>;tag=1928301774\r\n'
    b"t: Bob\r\n <sip:201@pbx.example.com>\r\n"
    b"i: a84b4c76e66710@pc33.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b'm: <sip:alice@192.0.2.1:5060;transport=udp>;+sip.instance="<urn:uuid:1>";reg-id=1, sip:alt@192.0.2.9\r\n'
    b"c: application/sdp\r\n"
    b"l: 4\r\n"
    b"\r\n"
    b"v=0\r\nextra"
)


def test_compact_and_folded_headers_are_understood() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    assert msg.method == "INVITE"
    assert msg.call_id == "a84b4c76e66710@pc33.example.com"
    assert msg.cseq.seq == 314159 and msg.cseq.method == "INVITE"
    assert msg.headers.get("CALL-id") == msg.headers.get("i")
    assert msg.to.display == "Bob"
    assert msg.from_.display == 'Alice "A" Liddell'
    assert msg.from_.tag == "1928301774"
    assert msg.content_type == "application/sdp"


def test_udp_body_is_cut_at_content_length() -> None:
    msg = parse_message(INVITE)
    assert msg.body == b"v=0\r"


def test_via_list_is_split_across_lines_and_commas() -> None:
    msg = parse_message(INVITE)
    vias = msg.vias
    assert [v.transport for v in vias] == ["UDP", "TCP", "UDP"]
    assert vias[0].branch == "z9hG4bK776asdhds"
    assert vias[0].has_rport and vias[0].rport is None
    assert vias[0].port == 5060 and vias[0].sent_by == "192.0.2.1:5060"
    assert vias[2].host == "10.0.0.1"


def test_contacts_with_instance_and_reg_id() -> None:
    msg = parse_message(INVITE)
    first, second = msg.contacts
    assert first.addr is not None and first.addr.uri_text == "sip:alice@192.0.2.1:5060;transport=udp"
    assert first.instance == "<urn:uuid:1>" and first.reg_id == 1
    assert second.addr is not None and second.addr.uri_text == "sip:alt@192.0.2.9"
    assert not second.addr.angle


def test_serialise_round_trip_keeps_headers_and_recomputes_content_length() -> None:
    msg = parse_message(INVITE)
    msg.body = b"v=0\r\n"
    again = parse_message(msg.to_bytes())
    assert isinstance(again, Request)
    assert again.body == b"v=0\r\n"
    assert again.headers.get("Content-Length") == "5"
    assert again.call_id == msg.call_id
    assert [str(v) for v in again.vias] == [str(v) for v in msg.vias]
    assert bytes(msg).startswith(b"INVITE sip:201@pbx.example.com SIP/2.0\r\nVia: ")


def test_headers_are_case_insensitive_and_keep_order() -> None:
    headers = Headers([("X-One", "1"), ("x-one", "2"), ("Supported", "path")])
    assert headers.get_all("X-ONE") == ["1", "2"]
    headers.set("x-one", "3")
    assert list(headers) == [("x-one", "3"), ("Supported", "path")]
    headers.add("k", "timer")
    assert headers.get_list("supported") == ["path", "timer"]
    headers.remove("SUPPORTED")
    assert "k" not in headers


def test_sip_uri_parts() -> None:
    uri = parse_uri("sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?subject=x&priority=urgent")
    assert isinstance(uri, SipURI)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips",
        "alice",
        "secret",
        "[2001:db8::1]",
        5061,
    )
    assert uri.param("TRANSPORT") == "tcp" and uri.has_param("lr") and uri.param("lr") is None
    assert uri.headers == "subject=x&priority=urgent"
    assert str(uri) == "sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?subject=x&priority=urgent"


def test_tel_and_unknown_schemes_are_kept_opaque() -> None:
    tel = parse_uri("tel:+39-0721-405516;phone-context=+39")
    assert isinstance(tel, TelURI) and tel.number == "+39-0721-405516"
    other = parse_uri("urn:service:sos")
    assert isinstance(other, AbsoluteURI) and other.scheme == "urn" and str(other) == "urn:service:sos"


@pytest.mark.parametrize(
    "text",
    ["sip:user@exa mple.com", "sip:", "sip:a@b@c", "sip:user@host:99999", "sip:user@300.1.1.1", "<sip:x@y>"],
)
def test_malformed_uris_are_parse_errors(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_uri(text)


def test_name_addr_forms() -> None:
    assert parse_name_addr("caller<sip:caller@example.com>;tag=323", "From").display == "caller"
    spec = parse_name_addr("sip:watson@example.com ;  tag = 7", "To")
    assert spec.uri_text == "sip:watson@example.com" and spec.tag == "7"
    with pytest.raises(SipParseError) as err:
        parse_name_addr("Bell, Alexander <sip:bell@example.com>", "From")
    assert err.value.header == "From"


def test_split_list_respects_quotes_and_brackets() -> None:
    assert split_list('"a, b" <sip:x@y;p=1,2>, <sip:z@w>') == ['"a, b" <sip:x@y;p=1,2>', "<sip:z@w>"]


def test_via_with_spaces_around_separators() -> None:
    via = parse_via("SIP  /  2.0  / UDP  host.example.com  : 5070 ; branch = z9hG4bKx ; received=192.0.2.1")
    assert via.port == 5070 and via.branch == "z9hG4bKx" and via.received == "192.0.2.1"


def _broken(data: bytes) -> SipMessageError:
    with pytest.raises(SipMessageError) as err:
        parse_message(data)
    return err.value


BASE = (
    "OPTIONS sip:pbx.example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\n"
    "To: <sip:c@d>\r\nCall-ID: abc\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
)


def test_bad_version_is_505_naming_the_request_line() -> None:
    err = _broken(BASE.replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia", 1).format(extra="").encode())
    assert err.sip_status == 505 and err.header == "Request-Line"


def test_error_carries_the_copyable_headers() -> None:
    err = _broken(BASE.format(extra="CSeq: 2 OPTIONS\r\n").encode())
    assert err.sip_status == 400 and err.header == "CSeq"
    names = [n for n, _ in err.copied]
    assert "Via" in names and "Call-ID" in names and "CSeq" not in names
    resp = make_response(err, 400)
    assert resp.headers.get("Call-ID") == "abc"
    assert resp.to.tag is not None


def test_max_forwards_over_255_is_rejected() -> None:
    err = _broken(BASE.replace("Max-Forwards: 70", "Max-Forwards: 256").format(extra="").encode())
    assert err.header == "Max-Forwards"


def test_size_limits_answer_513() -> None:
    big = BASE.format(extra="X-Big: " + "a" * 9000 + "\r\n").encode()
    assert _broken(big).sip_status == 513
    assert parse_message(big, limits=Limits(max_header_length=20000)) is not None
    many = BASE.format(extra="".join(f"X-{i}: {i}\r\n" for i in range(200))).encode()
    assert _broken(many).sip_status == 513
    huge = BASE.format(extra="X-Big: " + "a" * 70000 + "\r\n").encode()
    assert _broken(huge).sip_status == 513


def test_response_parsing_and_building() -> None:
    resp = parse_message(
        b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKq\r\nFrom: <sip:a@b>;tag=1\r\n"
        b"To: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 5 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    assert isinstance(resp, Response) and resp.status == 180 and resp.reason == "Ringing"
    request = parse_message(BASE.format(extra="").encode())
    assert isinstance(request, Request)
    answer = make_response(request, 200, to_tag="abc", headers=[("Allow", "INVITE, ACK")])
    assert answer.to.tag == "abc"
    assert answer.headers.get("CSeq") == "1 OPTIONS"
    assert answer.to_bytes().startswith(b"SIP/2.0 200 OK\r\n")


def test_stream_buffer_frames_messages_split_anywhere() -> None:
    one = BASE.format(extra="").encode()
    data = b"\r\n\r\n" + one + one.replace(b"Content-Length: 0\r\n\r\n", b"Content-Length: 3\r\n\r\nabc")
    buffer = StreamBuffer()
    out: list[object] = []
    for i in range(0, len(data), 7):
        out.extend(buffer.feed(data[i : i + 7]))
    assert out[0] == "ping"
    assert [type(m) for m in out[1:]] == [Request, Request]
    last = out[2]
    assert isinstance(last, Request) and last.body == b"abc"


def test_stream_without_content_length_is_broken_and_answered() -> None:
    buffer = StreamBuffer()
    data = BASE.format(extra="").replace("Content-Length: 0\r\n", "").encode()
    [err] = buffer.feed(data)
    assert isinstance(err, SipMessageError) and err.header == "Content-Length"
    assert buffer.broken
    assert err.copied


def test_udp_without_content_length_takes_the_rest_of_the_datagram() -> None:
    data = BASE.format(extra="").replace("Content-Length: 0\r\n", "").encode() + b"body bytes"
    msg = parse_message(data)
    assert msg.body == b"body bytes"


def test_replacing_the_top_via_keeps_the_rest_of_a_combined_line() -> None:
    headers = Headers(
        [("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2"), ("Via", "SIP/2.0/UDP c")]
    )
    headers.replace_first_element("v", "SIP/2.0/UDP a;branch=z9hG4bK1;received=192.0.2.1")
    assert headers.get_list("via") == [
        "SIP/2.0/UDP a;branch=z9hG4bK1;received=192.0.2.1",
        "SIP/2.0/UDP b;branch=z9hG4bK2",
        "SIP/2.0/UDP c",
    ]
