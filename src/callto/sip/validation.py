"""What the endpoint checks and stamps on a request before the TU sees it.

Owns the RFC 3261 8.2.1-8.2.3 checks every UAS makes (405/501, 416, 404/483 for a domain not served
here, 420, 415, 406), the "is this addressed to us" test behind them, and the Via stamping of
RFC 3261 18.2.1 with RFC 3581 (``received=``/``rport=`` on the top Via of every request, and of the
copied headers of a stateless error answer). Pure functions of a request and its source address.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from callto.sip.errors import SipMessageError
from callto.sip.grammar import SipURI, TelURI, Via, parse_media_type, parse_via, split_list
from callto.sip.message import METHODS, Request

Addr = tuple[str, int]


class RequestChecks:
    """The RFC 3261 8.2 checks for one endpoint's configuration (what it allows, supports, accepts)."""

    def __init__(
        self,
        allow: tuple[str, ...],
        supported: tuple[str, ...],
        accept: tuple[str, ...],
        is_local: Callable[[str], bool],
    ) -> None:
        self.allow_header = ", ".join(allow)
        self._allowed = frozenset(allow)
        self._supported = supported
        self._accept = accept
        self._local = is_local
        self._local_cache: dict[str, bool] = {}

    def is_for_us(self, request: Request) -> bool:
        uri = request.ruri
        return isinstance(uri, SipURI) and self.is_local(uri.host)

    def is_local(self, host: str) -> bool:
        local = self._local_cache.get(host)
        if local is None:
            local = self._local(host)
            if len(self._local_cache) >= 1024:  # bounded: peers choose the hosts
                self._local_cache.clear()
            self._local_cache[host] = local
        return local

    def validate(self, request: Request) -> None:
        """RFC 3261 8.2.1-8.2.3 (and 16.3 for Max-Forwards) for a well-formed request addressed to us.

        Raises :class:`SipMessageError` carrying the first refusal that applies: its ``sip_status``, a
        reason, and the headers the answer needs (``Allow``, ``Unsupported``, ``Accept``...).
        """
        method = request.method
        if method not in METHODS:
            raise refuse(501, "Not Implemented", [("Allow", self.allow_header)])
        if method not in self._allowed:
            raise refuse(405, "Method Not Allowed", [("Allow", self.allow_header)])
        uri = request.ruri
        if not isinstance(uri, (SipURI, TelURI)):
            raise refuse(416, "Unsupported URI Scheme", [])
        if isinstance(uri, SipURI) and not self.is_local(uri.host):
            if request.max_forwards == 0:
                raise refuse(483, "Too Many Hops", [])
            raise refuse(404, "Not Found (domain not served here)", [])
        if method != "CANCEL":
            unsupported = [opt for opt in request.headers.get_list("require") if opt and opt not in self._supported]
            if unsupported:
                raise refuse(420, "Bad Extension", [("Unsupported", ", ".join(unsupported))])
        if method in ("INVITE", "UPDATE", "PRACK") and (request.body or "content-type" in request.headers):
            self._check_body(request)
        if method == "INVITE" and "accept" in request.headers:
            accepted = [a.split(";", 1)[0].strip().lower() for a in request.headers.get_list("accept")]
            if accepted and not any(a in ("application/sdp", "application/*", "*/*") for a in accepted if a):
                raise refuse(406, "Not Acceptable", [("Warning", '399 callto "answer would be application/sdp"')])

    def _check_body(self, request: Request) -> None:
        ctype = request.headers.get("content-type")
        accept = [("Accept", ", ".join(self._accept))]
        if ctype is None:
            raise refuse(415, "Unsupported Media Type (no Content-Type)", accept)
        try:
            mtype, _params = parse_media_type(ctype)
        except SipMessageError:
            raise refuse(400, "Bad Request (malformed Content-Type)", []) from None
        if mtype not in self._accept:
            raise refuse(415, "Unsupported Media Type", accept)
        encodings = [e.lower() for e in request.headers.get_list("content-encoding") if e]
        if any(e != "identity" for e in encodings):
            raise refuse(415, "Unsupported Media Type (Content-Encoding)", [("Accept-Encoding", "identity")])


def refuse(status: int, reason: str, headers: list[tuple[str, str]]) -> SipMessageError:
    return SipMessageError(reason, sip_status=status, response_headers=headers, is_request=True)


def stamped(top: Via, addr: Addr) -> Via:
    """``top`` with received= (and rport= when asked for) naming the address it came from."""
    host = addr[0]
    rport = top.has_rport
    if not rport and top.host.strip("[]") == host:
        return top
    if rport:
        return top.with_params(received=host, rport=str(addr[1]))
    return top.with_params(received=host)


def stamp_copied_via(copied: list[tuple[str, str]], addr: Addr) -> list[tuple[str, str]]:
    """received/rport on the top Via of a stateless error answer too (RFC 3581 applies to every response)."""
    out: list[tuple[str, str]] = []
    done = False
    for name, value in copied:
        if not done and name.lower() == "via":
            done = True
            elements = split_list(value)
            with contextlib.suppress(SipMessageError):
                elements[0] = str(stamped(parse_via(elements[0]), addr))
            value = ", ".join(elements)
        out.append((name, value))
    return out


def stamp_via(request: Request, addr: Addr) -> None:
    """RFC 3261 18.2.1 and RFC 3581 4: record received= (and rport=) on the top Via."""
    vias = request.vias
    top = vias[0]
    new = stamped(top, addr)
    if new is top:
        return
    request.headers.replace_first_element("via", str(new))
    request.headers.cached("via", lambda: [new, *vias[1:]])


def reason_with_detail(reason: str, detail: str) -> str:
    """A reason phrase with the parser's detail in brackets (printable, at most 120 characters)."""
    clean = "".join(ch for ch in detail if ch.isprintable())[:120]
    return f"{reason} ({clean})" if clean else reason
