"""Outbound registration toward a provider, sans-IO: challenge, refresh, back-off, 423, unregister."""

from __future__ import annotations

from callto.sip.endpoint import EndpointConfig, ResponseReceived, SipEndpoint, Source, TransactionTimedOut
from callto.sip.message import Request, make_response, parse_message
from callto.sip.trunk import TrunkConfig, TrunkRegistrations, TrunkRouter

PROVIDER = Source("udp", ("127.0.0.1", 5099))
TRUNK = TrunkConfig("t1", "P", "127.0.0.1", 5099, username="tu", password="tp", register=True, register_expires=600)


class Harness:
    def __init__(self) -> None:
        self.now = 5000.0
        self.endpoint = SipEndpoint(EndpointConfig(domain="pbx.test"))
        self.regs = TrunkRegistrations(self.endpoint, "127.0.0.1", 5060)

    def configure(self, trunks: list[TrunkConfig]) -> None:
        self.regs.configure(trunks, {t.id: PROVIDER for t in trunks}, self.now)

    def fire(self) -> None:
        self.regs.handle_timer(self.now)

    def sent(self) -> list[Request]:
        out = []
        for item in self.endpoint.transmit():
            message = parse_message(item.data)
            assert isinstance(message, Request)
            out.append(message)
        return out

    def answer(self, request: Request, status: int, headers: list[tuple[str, str]] | None = None) -> None:
        self.endpoint.receive_datagram(
            make_response(request, status, to_tag="p", headers=headers).to_bytes(), PROVIDER.addr, self.now
        )
        while (event := self.endpoint.next_event()) is not None:
            if isinstance(event, ResponseReceived) and self.regs.owns(event.tx_id):
                assert event.tx_id is not None
                self.regs.handle_response(event.tx_id, event.response, self.now)
            elif isinstance(event, TransactionTimedOut) and self.regs.owns(event.tx_id):
                self.regs.handle_timeout(event.tx_id, self.now)


CHALLENGE = [("WWW-Authenticate", 'Digest realm="prov", nonce="abc", algorithm=MD5, qop="auth"')]


def test_register_answers_the_challenge_and_refreshes_before_expiry() -> None:
    h = Harness()
    h.configure([TRUNK])
    assert h.regs.get_timer() == h.now
    h.fire()
    [first] = h.sent()
    assert first.uri == "sip:127.0.0.1:5099" and first.headers.get("expires") == "600"
    assert first.headers.get("contact") == "<sip:tu@127.0.0.1:5060>"
    h.answer(first, 401, CHALLENGE)
    [second] = h.sent()
    assert 'username="tu"' in (second.headers.get("authorization") or "")
    assert second.call_id == first.call_id and second.cseq.seq == first.cseq.seq + 1
    h.answer(second, 200, [("Contact", "<sip:tu@127.0.0.1:5060>;expires=300")])
    assert h.regs.status("t1") == (True, None)
    assert h.regs.get_timer() == h.now + 240  # 80 % of what the provider granted


def test_failure_is_reported_and_retried_with_back_off() -> None:
    h = Harness()
    h.configure([TRUNK])
    h.fire()
    [first] = h.sent()
    h.answer(first, 403)
    assert h.regs.status("t1") == (False, "403 Forbidden")
    assert h.regs.get_timer() == h.now + 5
    h.now += 5
    h.fire()
    [again] = h.sent()
    h.answer(again, 403)
    assert h.regs.get_timer() == h.now + 10


def test_interval_too_brief_retries_with_the_providers_minimum() -> None:
    h = Harness()
    h.configure([TRUNK])
    h.fire()
    [first] = h.sent()
    h.answer(first, 423, [("Min-Expires", "1800")])
    h.fire()
    [again] = h.sent()
    assert again.headers.get("expires") == "1800"


def test_removing_a_registered_trunk_unregisters_it() -> None:
    h = Harness()
    h.configure([TRUNK])
    h.fire()
    [first] = h.sent()
    h.answer(first, 200)
    h.configure([])
    [bye] = h.sent()
    assert bye.method == "REGISTER" and bye.headers.get("expires") == "0"
    assert h.regs.status("t1") == (False, None)


def test_same_trunk_list_again_does_not_re_register() -> None:
    h = Harness()
    h.configure([TRUNK])
    h.fire()
    [first] = h.sent()
    h.answer(first, 200)
    h.configure([TRUNK])
    h.fire()
    assert h.sent() == []


def test_the_router_never_resolves_a_name_itself_and_lists_it_as_unresolved() -> None:
    router = TrunkRouter()
    named = TrunkConfig("t1", "P", "sip.provider.invalid", 5060)
    literal = TrunkConfig("t2", "Q", "[::1]", 5060)
    router.set([named, literal])
    assert router.addresses == {"t1": "sip.provider.invalid", "t2": "::1"}
    assert router.unresolved() == [named], "nothing may be sent to t1 until its name is looked up"
    router.set([named, literal], {"t1": "127.0.0.1"})
    assert router.unresolved() == [] and router.dest(named).addr == ("127.0.0.1", 5060)
