"""SIP dialogs (RFC 3261 section 12) as plain data: one per call leg of the B2BUA.

Owns the dialog state of each leg: Call-ID, local and remote tags and URIs, the remote target (the
peer's Contact, updated by target-refresh requests and their 2xx), the route set, both CSeq counters and
where requests go on the wire (the address the peer registered or called from, so NAT'd phones are
reached). It builds in-dialog requests (BYE, re-INVITE, INFO, ACK for a 2xx) and checks the CSeq of
in-dialog requests the peer sends (RFC 3261 12.2.2: a lower one gets 500).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from callto.sip.endpoint import Source
from callto.sip.grammar import SipURI, parse_uri, quote
from callto.sip.message import Headers, Request, Response


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str  # From of what we send (name-addr text without tag)
    remote_uri: str  # To of what we send (name-addr text without tag)
    remote_target: str
    dest: Source
    local_contact: str
    route_set: list[str] = field(default_factory=list)
    local_seq: int = 1
    remote_seq: int | None = None
    confirmed: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.call_id, self.local_tag)

    def request(self, method: str, *, body: bytes = b"", content_type: str | None = None) -> Request:
        """A new in-dialog request (12.2.1.1); ACK and CANCEL do not use it (they reuse a CSeq)."""
        self.local_seq += 1
        return self._build(method, self.local_seq, body=body, content_type=content_type)

    def ack(self, seq: int, *, body: bytes = b"", content_type: str | None = None) -> Request:
        """The ACK of a 2xx to the INVITE with CSeq ``seq`` (13.2.2.4: a new branch, same CSeq number)."""
        return self._build("ACK", seq, body=body, content_type=content_type)

    def _build(self, method: str, seq: int, *, body: bytes, content_type: str | None) -> Request:
        headers = Headers()
        uri = self.remote_target
        routes = list(self.route_set)
        if routes and ";lr" not in routes[0]:
            # strict router (12.2.1.1): the first route becomes the Request-URI
            uri = routes[0].strip("<>")
            routes = [*routes[1:], f"<{self.remote_target}>"]
        for route in routes:
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        headers.add("From", f"{self.local_uri};tag={self.local_tag}")
        headers.add("To", f"{self.remote_uri};tag={self.remote_tag}")
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{seq} {method}")
        if method in ("INVITE", "UPDATE"):
            headers.add("Contact", self.local_contact)
        if body:
            headers.add("Content-Type", content_type or "application/sdp")
        return Request(method, uri, headers, body)

    def accept_remote_seq(self, request: Request) -> bool:
        """12.2.2: False (answer 500) when the CSeq is lower than the last one; else remember it."""
        seq = request.cseq.seq
        if request.method in ("ACK", "CANCEL"):
            return True
        if self.remote_seq is not None and seq < self.remote_seq:
            return False
        self.remote_seq = seq
        return True

    def refresh_target(self, message: Request | Response) -> None:
        """A target-refresh request (re-INVITE, UPDATE) or its 2xx may carry a new Contact (12.2)."""
        try:
            contacts = message.contacts
        except Exception:  # a broken Contact on a refresh keeps the old target rather than failing the call
            return
        if contacts and contacts[0].addr is not None:
            self.remote_target = contacts[0].addr.uri_text


def local_contact(host: str, port: int, transport: str, user: str = "callto") -> str:
    params = "" if transport == "udp" else f";transport={transport}"
    host_text = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"<sip:{user}@{host_text}:{port}{params}>"


def uas_dialog(request: Request, source: Source, local_tag: str, contact: str) -> Dialog:
    """The dialog a UAS (our caller-facing leg) builds from the INVITE it answers (12.1.1)."""
    target = request.contacts[0].addr.uri_text if request.contacts and request.contacts[0].addr else request.uri
    to = request.to
    frm = request.from_
    return Dialog(
        call_id=request.call_id,
        local_tag=local_tag,
        remote_tag=frm.tag or "",
        local_uri=_without_tag(to.display, to.uri_text),
        remote_uri=_without_tag(frm.display, frm.uri_text),
        remote_target=target,
        dest=source,
        local_contact=contact,
        route_set=list(request.headers.get_list("record-route")),
        local_seq=secrets.randbelow(10_000) + 1,
        remote_seq=request.cseq.seq,
    )


def uac_dialog(request: Request, response: Response, dest: Source) -> Dialog:
    """The dialog a UAC (our callee-facing leg) builds from a 2xx or 1xx-with-tag to its INVITE (12.1.2)."""
    target = request.uri
    try:
        contacts = response.contacts
        if contacts and contacts[0].addr is not None:
            target = contacts[0].addr.uri_text
    except Exception:
        pass
    frm = request.from_
    to = response.to
    return Dialog(
        call_id=request.call_id,
        local_tag=frm.tag or "",
        remote_tag=to.tag or "",
        local_uri=_without_tag(frm.display, frm.uri_text),
        remote_uri=_without_tag(to.display, to.uri_text),
        remote_target=target,
        dest=dest,
        local_contact=request.headers.get("contact") or "",
        route_set=list(reversed(response.headers.get_list("record-route"))),
        local_seq=request.cseq.seq,
    )


def _without_tag(display: str | None, uri_text: str) -> str:
    name = f"{quote(display)} " if display else ""
    return f"{name}<{uri_text}>"


def user_of(uri_text: str) -> str | None:
    try:
        uri = parse_uri(uri_text)
    except Exception:
        return None
    return uri.user if isinstance(uri, SipURI) else None
