"""Leg signalling: the messages the B2BUA sends on one leg, and the leg state each one implies.

Owns :class:`LegSignalling`: the INVITE of a branch (and its retry with a trunk's credentials), the ACK
of a 2xx (kept and re-sent on retransmissions), BYE, CANCEL, the caller's responses (with the 2xx
retransmitted over unreliable transports until the ACK arrives, RFC 3261 13.3.1.4) and the Contact the
switch puts in each. Sans-IO: the :class:`~callto.sip.endpoint.SipEndpoint` it calls is, and every
method takes ``now``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from callto.sip.auth import DigestClient
from callto.sip.call_states import CallState, LegInput, LegState, move_leg
from callto.sip.calls import Call, CallBook, Leg
from callto.sip.dialog import local_contact
from callto.sip.endpoint import SipEndpoint
from callto.sip.errors import SipLocalError
from callto.sip.message import Headers, Request, Response, make_response

log = logging.getLogger(__name__)


@dataclass
class B2BUAConfig:
    domain: str
    contact_host: str
    contact_port: int
    ring_timeout: float = 30.0
    user_agent: str = "callto"
    # the listener port of each transport (RFC 3261 18, 20.42: a Contact names where the peer reaches us
    # on the transport in use, so a TLS phone's ACK and BYE come to the TLS port); others use contact_port
    contact_ports: tuple[tuple[str, int], ...] = ()


class LegSignalling:
    def __init__(self, config: B2BUAConfig, endpoint: SipEndpoint, book: CallBook) -> None:
        self.config = config
        self.endpoint = endpoint
        self.book = book

    def contact(self, transport: str) -> str:
        port = next((p for t, p in self.config.contact_ports if t == transport), self.config.contact_port)
        return local_contact(self.config.contact_host, port, transport)

    def send_invite(self, leg: Leg, now: float) -> bool:
        """Send ``leg.invite``; False (the leg ended with 503) when it cannot leave."""
        assert leg.invite is not None
        try:
            tx_id = self.endpoint.send_request(leg.invite, leg.dest, now)
        except SipLocalError as exc:
            log.warning("cannot send INVITE to %s: %s", leg.dest, exc)
            move_leg(leg, LegInput.ENDED)
            leg.final = 503
            return False
        leg.tx_id = tx_id
        self.book.client[tx_id] = leg
        return True

    def retry_with_auth(self, leg: Leg, response: Response, now: float) -> bool:
        trunk = leg.trunk
        assert trunk is not None and leg.invite is not None
        header = "www-authenticate" if response.status == 401 else "proxy-authenticate"
        value = DigestClient(trunk.username, trunk.password).authorization(
            response.headers.get_all(header), "INVITE", leg.invite.uri
        )
        if value is None:
            return False
        leg.auth_tries += 1
        old = leg.invite
        headers = Headers()
        for name, val in old.headers:
            if name.lower() in ("via", "authorization", "proxy-authorization", "cseq"):
                continue
            headers.add(name, val)
        headers.add("CSeq", f"{old.cseq.seq + 1} INVITE")
        headers.add("Authorization" if response.status == 401 else "Proxy-Authorization", value)
        leg.invite = Request("INVITE", old.uri, headers, old.body)
        move_leg(leg, LegInput.RETRY)
        self.send_invite(leg, now)
        return True

    def ack(self, leg: Leg, body: bytes) -> None:
        if leg.dialog is None or leg.invite is None or leg.ack is not None:
            return
        ack = leg.dialog.ack(leg.invite.cseq.seq, body=body)
        leg.ack = ack
        self.endpoint.send_stateless(copy_request(ack), leg.dest)

    def reack(self, leg: Leg) -> None:
        """A 2xx came again: the ACK sent for it goes again."""
        if leg.ack is not None:
            self.endpoint.send_stateless(copy_request(leg.ack), leg.dest)

    def bye(self, leg: Leg, now: float) -> None:
        if leg.dialog is None:
            return
        move_leg(leg, LegInput.ENDED)
        self.book.dialogs.pop(leg.dialog.key, None)
        try:
            tx_id = self.endpoint.send_request(leg.dialog.request("BYE"), leg.dest, now)
        except SipLocalError:
            return
        self.book.byes.add(tx_id)

    def cancel(self, leg: Leg, now: float) -> None:
        move_leg(leg, LegInput.ENDED)
        if leg.tx_id is not None:
            # the INVITE's final answer (487, or a 2xx that crossed) still arrives through book.client
            self.endpoint.cancel(leg.tx_id, now)

    def hang_up(self, leg: Leg, now: float) -> None:
        """End one leg as its state needs: CANCEL while it rings, ACK (if owed) and BYE once answered."""
        if leg.state is LegState.CONFIRMED:
            if leg.ack is None and leg.uac:
                self.ack(leg, b"")
            self.bye(leg, now)
        elif leg.state in (LegState.CALLING, LegState.EARLY):
            self.cancel(leg, now)

    def respond_a(
        self,
        call: Call,
        status: int,
        now: float,
        *,
        body: bytes = b"",
        reason: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        a = call.a
        if a is None or a.tx_id is None or a.uac or a.invite is None:
            return
        extra = list(headers or [])
        if status < 300 and status != 100:
            extra.append(("Contact", self.contact(a.dest.transport)))
        if body:
            extra.append(("Content-Type", "application/sdp"))
        response = make_response(
            a.invite, status, reason, to_tag=a.local_tag, headers=extra, body=body, server=self.config.user_agent
        )
        try:
            self.endpoint.respond(a.tx_id, response, now)
        except SipLocalError as exc:
            log.debug("cannot answer caller of %s with %s: %s", call.id, status, exc)
            return
        if status >= 200:
            self.book.server.pop(a.tx_id, None)
        if 200 <= status < 300:
            move_leg(a, LegInput.CONFIRMED)
            assert a.dialog is not None
            a.dialog.confirmed = True
            self.book.dialogs[a.dialog.key] = a
            if not a.dest.reliable:
                call.final_to_a = response
                call.retransmit_interval = 0.5
                call.retransmit_at = now + 0.5
        elif status >= 300:
            move_leg(a, LegInput.ENDED)

    def retransmit_final(self, call: Call, now: float) -> None:
        a = call.a
        if call.final_to_a is None or a is None or call.state is CallState.ENDED:
            call.retransmit_at = None
            return
        self.endpoint.send_stateless(call.final_to_a, a.dest)
        call.retransmit_interval = min(call.retransmit_interval * 2, 4.0)
        call.retransmit_at = now + call.retransmit_interval


def copy_request(request: Request) -> Request:
    """A fresh copy, so the endpoint may add its Via to each transmission of a stored ACK."""
    headers = Headers([(n, v) for n, v in request.headers if n.lower() != "via"])
    return Request(request.method, request.uri, headers, request.body)
