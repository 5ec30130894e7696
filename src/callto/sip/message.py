"""SIP messages: the header model, parsing and serialising requests/responses, and framing (UDP and streams).

Owns: :class:`Headers` (case-insensitive names, compact forms, order kept), :class:`Request` /
:class:`Response`, :func:`parse_message` for one datagram, :class:`StreamBuffer` for TCP/TLS byte streams,
:class:`Limits`, and :func:`make_response` that builds an answer to a request, even from a
:class:`~callto.sip.errors.SipMessageError` raised on a partly broken one. Header values are kept as the text
that arrived; typed views (:meth:`Message.vias`, :meth:`Message.cseq`, ...) parse on first use and are cached.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from callto.sip.errors import SipMessageError, SipParseError
from callto.sip.grammar import (
    REQUEST_LINE_RE,
    STATUS_LINE_RE,
    TOKEN_RE,
    URI,
    VERSION_RE,
    ContactValue,
    CSeq,
    NameAddr,
    Via,
    parse_call_id,
    parse_contact,
    parse_cseq,
    parse_delta_seconds,
    parse_name_addr,
    parse_uint,
    parse_uri,
    parse_via,
    split_list,
)

T = TypeVar("T")

ENCODING = "utf-8"
ERRORS = "surrogateescape"

# RFC 3261 7.3.3 and the IANA registry of compact forms
COMPACT_FORMS = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

CANONICAL_NAMES = {
    name.lower(): name
    for name in (
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Authentication-Info",
        "Authorization",
        "Call-ID",
        "Call-Info",
        "Contact",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "Date",
        "Error-Info",
        "Event",
        "Expires",
        "From",
        "Identity",
        "Identity-Info",
        "In-Reply-To",
        "Max-Forwards",
        "MIME-Version",
        "Min-Expires",
        "Min-SE",
        "Organization",
        "Path",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Priority",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "RAck",
        "Reason",
        "Record-Route",
        "Refer-To",
        "Referred-By",
        "Reject-Contact",
        "Reply-To",
        "Request-Disposition",
        "Require",
        "Retry-After",
        "Route",
        "RSeq",
        "Server",
        "Service-Route",
        "Session-Expires",
        "Subject",
        "Subscription-State",
        "Supported",
        "Timestamp",
        "To",
        "Unsupported",
        "User-Agent",
        "Via",
        "Warning",
        "WWW-Authenticate",
    )
}

# Headers whose grammar is a comma-separated list (RFC 3261 7.3.1): these may be split and combined.
LIST_HEADERS = frozenset(
    (
        "via",
        "contact",
        "route",
        "record-route",
        "path",
        "service-route",
        "allow",
        "supported",
        "require",
        "proxy-require",
        "unsupported",
        "accept",
        "accept-encoding",
        "accept-language",
        "content-encoding",
        "content-language",
        "allow-events",
        "alert-info",
        "call-info",
        "error-info",
        "in-reply-to",
        "warning",
        "p-asserted-identity",
        "reason",
    )
)

# Headers that must appear at most once (RFC 3261 7.3.1: anything else is a list)
SINGLE_HEADERS = frozenset(
    ("to", "from", "call-id", "cseq", "max-forwards", "content-length", "content-type", "expires")
)

METHODS = frozenset(
    (
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "PRACK",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
        "INFO",
        "REFER",
        "MESSAGE",
        "UPDATE",
    )
)

REASONS = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    493: "Undecipherable",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


_KEYS: dict[str, str] = {}


def header_key(name: str) -> str:
    """The lookup key of a header name: lower case, compact form expanded (memoised: a hot path)."""
    key = _KEYS.get(name)
    if key is None:
        lname = name.lower()
        key = COMPACT_FORMS.get(lname, lname)
        if len(_KEYS) < 4096:  # bounded: peers choose header names
            _KEYS[name] = key
    return key


def canonical_name(name: str) -> str:
    key = header_key(name)
    return CANONICAL_NAMES.get(key, name)


class Headers:
    """An ordered multi-map of header fields; lookups ignore case and understand compact forms.

    Values are stored as received (one entry per header line); :meth:`get_list` splits list headers on
    their separating commas. Typed views are cached under the header's key; changing a header drops
    only that header's view.
    """

    __slots__ = ("_cache", "_items")

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str, str]] = []
        self._cache: dict[str, Any] = {}
        if items:
            for name, value in items:
                self.add(name, value)

    # Every change keeps the lookup index (when built) up to date instead of dropping it: messages are
    # built and stamped header by header between reads, and rebuilding the index after each change was
    # ~100 rebuilds per call through the B2BUA.
    def add(self, name: str, value: str) -> None:
        key = header_key(name)
        self._items.append((key, CANONICAL_NAMES.get(key, name), value))
        cache = self._cache
        cache.pop(key, None)
        index: dict[str, list[str]] | None = cache.get("#index")
        if index is not None:
            values = index.get(key)
            if values is None:
                index[key] = [value]
            else:
                values.append(value)

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` with one value (kept at the first one's position)."""
        key = header_key(name)
        entry = (key, CANONICAL_NAMES.get(key, name), value)
        for i, item in enumerate(self._items):
            if item[0] == key:
                self._items[i] = entry
                self._items[i + 1 :] = [it for it in self._items[i + 1 :] if it[0] != key]
                break
        else:
            self._items.append(entry)
        cache = self._cache
        cache.pop(key, None)
        index: dict[str, list[str]] | None = cache.get("#index")
        if index is not None:
            index[key] = [value]

    def prepend(self, name: str, value: str) -> None:
        key = header_key(name)
        self._items.insert(0, (key, CANONICAL_NAMES.get(key, name), value))
        cache = self._cache
        cache.pop(key, None)
        index: dict[str, list[str]] | None = cache.get("#index")
        if index is not None:
            values = index.get(key)
            if values is None:
                index[key] = [value]
            else:
                values.insert(0, value)

    def replace_first_element(self, name: str, value: str) -> None:
        """Replace the first list element of ``name`` (the top Via), keeping the others where they are."""
        key = header_key(name)
        for i, (k, n, v) in enumerate(self._items):
            if k == key:
                new = ", ".join([value, *split_list(v)[1:]]) if "," in v else value
                self._items[i] = (k, n, new)
                self._cache.pop(key, None)
                index: dict[str, list[str]] | None = self._cache.get("#index")
                if index is not None:
                    index[key][0] = new  # the first line of that header is this one: the index stays right
                return
        self.prepend(name, value)

    def remove(self, name: str) -> None:
        key = header_key(name)
        self._items = [it for it in self._items if it[0] != key]
        cache = self._cache
        cache.pop(key, None)
        index: dict[str, list[str]] | None = cache.get("#index")
        if index is not None:
            index.pop(key, None)

    def _index(self) -> dict[str, list[str]]:
        """key -> values, built on the first lookup (a message is read far more often than changed)."""
        index: dict[str, list[str]] | None = self._cache.get("#index")
        if index is None:
            index = {}
            for k, _n, v in self._items:
                values = index.get(k)
                if values is None:
                    index[k] = [v]
                else:
                    values.append(v)
            self._cache["#index"] = index
        return index

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._index().get(header_key(name))
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        return list(self._index().get(header_key(name), ()))

    def get_list(self, name: str) -> list[str]:
        """Every element of a list header, across all its lines, in order."""
        values = self._index().get(header_key(name))
        if not values:
            return []
        if len(values) == 1:
            return split_list(values[0])
        out: list[str] = []
        for value in values:
            out.extend(split_list(value))
        return out

    def count(self, name: str) -> int:
        return len(self._index().get(header_key(name), ()))

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return header_key(name) in self._index()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for _k, name, value in self._items:
            yield name, value

    def __len__(self) -> int:
        return len(self._items)

    def copy(self) -> Headers:
        new = Headers()
        new._items = list(self._items)
        return new

    def cached(self, key: str, build: Callable[[], T]) -> T:
        try:
            return self._cache[key]  # type: ignore[no-any-return]
        except KeyError:
            value = build()
            self._cache[key] = value
            return value


_UNSET: Any = object()  # a cached view whose value may legitimately be None


class Message:
    """What requests and responses share: headers, body and the typed header views."""

    __slots__ = ("body", "headers")

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers if headers is not None else Headers()
        self.body = body

    # typed views ------------------------------------------------------------------------------------
    # Each view parses its header on first use and keeps the result in the headers' cache (dropped when
    # that header changes). Written out rather than through Headers.cached: no closure per access, and
    # these run several times for every message on the hot path.
    def _single(self, name: str) -> str:
        # ``name`` is always a lookup key here (lower case, long form)
        values = self.headers._index().get(name)
        if not values:
            raise SipParseError(f"missing {canonical_name(name)} header", header=canonical_name(name))
        if len(values) > 1:
            raise SipParseError(f"more than one {canonical_name(name)} header", header=canonical_name(name))
        return values[0]

    @property
    def vias(self) -> list[Via]:
        cache = self.headers._cache
        value: list[Via] | None = cache.get("via")
        if value is None:
            elements = self.headers.get_list("via")
            if not elements:
                raise SipParseError("missing Via header", header="Via")
            if "" in elements:
                raise SipParseError("empty element in Via", header="Via")
            value = cache["via"] = [parse_via(e) for e in elements]
        return value

    @property
    def call_id(self) -> str:
        cache = self.headers._cache
        value: str | None = cache.get("call-id")
        if value is None:
            value = cache["call-id"] = parse_call_id(self._single("call-id"))
        return value

    @property
    def cseq(self) -> CSeq:
        cache = self.headers._cache
        value: CSeq | None = cache.get("cseq")
        if value is None:
            value = cache["cseq"] = parse_cseq(self._single("cseq"))
        return value

    @property
    def from_(self) -> NameAddr:
        cache = self.headers._cache
        value: NameAddr | None = cache.get("from")
        if value is None:
            value = cache["from"] = parse_name_addr(self._single("from"), "From")
        return value

    @property
    def to(self) -> NameAddr:
        cache = self.headers._cache
        value: NameAddr | None = cache.get("to")
        if value is None:
            value = cache["to"] = parse_name_addr(self._single("to"), "To")
        return value

    @property
    def contacts(self) -> list[ContactValue]:
        cache = self.headers._cache
        value: list[ContactValue] | None = cache.get("contact")
        if value is None:
            elements = self.headers.get_list("contact")
            if "" in elements:
                raise SipParseError("empty element in Contact", header="Contact")
            value = [parse_contact(e) for e in elements]
            if len(value) > 1 and any(v.star for v in value):
                raise SipParseError("Contact * mixed with other contacts", header="Contact")
            cache["contact"] = value
        return value

    @property
    def max_forwards(self) -> int | None:
        cache = self.headers._cache
        value = cache.get("max-forwards", _UNSET)
        if value is _UNSET:
            value = None
            if "max-forwards" in self.headers._index():
                value = parse_uint(self._single("max-forwards"), "Max-Forwards", maximum=255)
            cache["max-forwards"] = value
        return value  # type: ignore[no-any-return]

    @property
    def expires(self) -> int | None:
        cache = self.headers._cache
        value = cache.get("expires", _UNSET)
        if value is _UNSET:
            value = None
            if "expires" in self.headers._index():
                value = parse_delta_seconds(self._single("expires"), "Expires")
            cache["expires"] = value
        return value  # type: ignore[no-any-return]

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("content-type")
        if value is None:
            return None
        return value.split(";", 1)[0].strip().lower().replace(" ", "")

    @property
    def routes(self) -> list[NameAddr]:
        return self.headers.cached(
            "route", lambda: [parse_name_addr(e, "Route") for e in self.headers.get_list("route")]
        )

    @property
    def record_routes(self) -> list[NameAddr]:
        return self.headers.cached(
            "record-route",
            lambda: [parse_name_addr(e, "Record-Route") for e in self.headers.get_list("record-route")],
        )

    # serialising -------------------------------------------------------------------------------------
    def _start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Wire form; Content-Length is always written from the body (a stored one is not trusted)."""
        parts = [self._start_line()]
        append = parts.append
        for key, name, value in self.headers._items:
            if key != "content-length":
                append(f"{name}: {value}")
        body = self.body
        append(f"Content-Length: {len(body)}\r\n\r\n")
        head = "\r\n".join(parts).encode(ENCODING, ERRORS)
        return head + body if body else head

    __bytes__ = to_bytes


class Request(Message):
    __slots__ = ("method", "uri", "version")

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = "SIP/2.0",
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = uri
        self.version = version

    @property
    def ruri(self) -> URI:
        cache = self.headers._cache
        value: URI | None = cache.get(":ruri")
        if value is None:
            value = cache[":ruri"] = parse_uri(self.uri, header="Request-URI", allow_headers=False)
        return value

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    __slots__ = ("reason", "status", "version")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = "SIP/2.0",
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = reason if reason is not None else REASONS.get(status, "Unknown")
        self.version = version

    def _start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds applied to every message before anything else is done with it."""

    max_message: int = 65535
    max_headers: int = 128
    max_header_length: int = 8192


DEFAULT_LIMITS = Limits()
_UNBOUNDED_HEADERS = Limits(max_headers=1 << 30, max_header_length=1 << 30)

_COPIED = ("via", "from", "to", "call-id", "cseq")


def copyable_headers(headers: Headers) -> list[tuple[str, str]]:
    """The Via/From/To/Call-ID/CSeq values that parse on their own, to build an error response."""
    probe = Message(headers)
    out: list[tuple[str, str]] = []
    checks: dict[str, Callable[[], object]] = {
        "via": lambda: probe.vias,
        "from": lambda: probe.from_,
        "to": lambda: probe.to,
        "call-id": lambda: probe.call_id,
        "cseq": lambda: probe.cseq,
    }
    for key in _COPIED:
        try:
            checks[key]()
        except SipMessageError:
            continue
        out.extend((canonical_name(key), v) for v in headers.get_all(key))
    return out


def _split_head(data: bytes) -> tuple[bytes, bytes | None]:
    """Head and body; body is None when the blank line ending the head is missing."""
    idx = data.find(b"\r\n\r\n")
    if idx >= 0:
        return data[:idx], data[idx + 4 :]
    idx = data.find(b"\n\n")
    if idx >= 0:
        return data[:idx], data[idx + 2 :]
    return data, None


# A header name as it arrived -> (key, canonical name), for names already checked to be tokens: peers send
# the same few dozen names over and over, so the token check and case folding run once per name.
_NAMES: dict[str, tuple[str, str]] = {}


def _header_name(raw: str) -> tuple[str, str]:
    """(key, canonical name) of a header line's name part (the text before the colon)."""
    found = _NAMES.get(raw)
    if found is not None:
        return found
    name = raw.rstrip(" \t")
    if TOKEN_RE.fullmatch(name) is None:
        raise SipParseError("malformed header line")
    key = name.lower()
    key = COMPACT_FORMS.get(key, key)
    found = (key, CANONICAL_NAMES.get(key, name))
    if len(_NAMES) < 4096:  # bounded: peers choose header names
        _NAMES[raw] = found
    return found


def _parse_head(head: bytes, limits: Limits) -> tuple[str, Headers]:
    text = head.decode(ENCODING, ERRORS)
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if "\n " in text or "\n\t" in text:
        return _parse_folded_head(text, limits)
    # no folded lines: one header field per line
    lines = text.split("\n")
    headers = Headers()
    items = headers._items
    index: dict[str, list[str]] = {}
    max_length = limits.max_header_length
    max_headers = limits.max_headers
    names = _NAMES
    check_length = len(text) > max_length  # else no line can be too long: one test instead of one per line
    for line in lines[1 : max_headers + 1]:
        if check_length and len(line) > max_length:
            raise SipParseError("header field too long", sip_status=513)
        # message-header = header-name HCOLON header-value (partition + a token check beats one big regex)
        raw, colon, value = line.partition(":")
        found = names.get(raw) if colon else None
        if found is None:
            if not colon:
                raise SipParseError("malformed header line")
            found = _header_name(raw)
        key = found[0]
        value = value.strip(" \t")
        items.append((key, found[1], value))
        values = index.get(key)
        if values is None:
            index[key] = [value]
        else:
            values.append(value)
    if len(lines) - 1 > max_headers:
        raise SipParseError("too many header fields", sip_status=513)
    headers._cache["#index"] = index
    return lines[0], headers


def _parse_folded_head(text: str, limits: Limits) -> tuple[str, Headers]:
    lines = text.split("\n")
    start = lines[0]
    headers = Headers()
    items = headers._items
    current: list[str] | None = None
    count = 0
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            # header folding (RFC 3261 7.3.1): a continuation line joins the previous one with one SP
            if current is None:
                raise SipParseError("continuation line before any header")
            current.append(line.strip(" \t"))
            continue
        if current is not None:
            _add_line(items, current, limits)
        current = [line]
        count += 1
        if count > limits.max_headers:
            raise SipParseError("too many header fields", sip_status=513)
    if current is not None:
        _add_line(items, current, limits)
    return start, headers


def _add_line(items: list[tuple[str, str, str]], pieces: list[str], limits: Limits) -> None:
    line = pieces[0] if len(pieces) == 1 else " ".join([pieces[0], *(p for p in pieces[1:] if p)])
    if len(line) > limits.max_header_length:
        raise SipParseError("header field too long", sip_status=513)
    raw, colon, value = line.partition(":")
    if not colon:
        raise SipParseError("malformed header line")
    key, name = _header_name(raw)
    items.append((key, name, value.strip(" \t")))


def _check_single(headers: Headers) -> None:
    index = headers._index()
    if len(index) == len(headers._items):
        return  # no header name appears twice
    seen: set[str] = set()
    for key, _name, _value in headers._items:
        if key in SINGLE_HEADERS:
            if key in seen:
                raise SipParseError(f"more than one {canonical_name(key)} header", header=canonical_name(key))
            seen.add(key)


def _check_request(req: Request) -> None:
    """Structural checks of RFC 3261 8.2 that make a request malformed (400/505), not merely unwanted."""
    headers = req.headers
    _check_single(headers)
    # parse each mandatory header once (the views raise with the header's name)
    req.vias  # noqa: B018
    req.from_  # noqa: B018
    req.to  # noqa: B018
    req.call_id  # noqa: B018
    cseq = req.cseq
    req.max_forwards  # noqa: B018
    req.expires  # noqa: B018
    if "contact" in headers._index():
        req.contacts  # noqa: B018
    if cseq.method != req.method:
        raise SipParseError("CSeq method does not match the request method", header="CSeq")
    req.ruri  # noqa: B018


def _check_response(resp: Response) -> None:
    _check_single(resp.headers)
    resp.vias  # noqa: B018
    resp.from_  # noqa: B018
    resp.to  # noqa: B018
    resp.call_id  # noqa: B018
    resp.cseq  # noqa: B018


def _content_length(headers: Headers) -> int | None:
    values = headers.get_all("content-length")
    if not values:
        return None
    if len(values) > 1:
        raise SipParseError("more than one Content-Length header", header="Content-Length")
    return parse_uint(values[0], "Content-Length")


def parse_message(
    data: bytes, *, limits: Limits = DEFAULT_LIMITS, stream: bool = False, strict: bool = True
) -> Request | Response:
    """Parse one message from a datagram (``stream=False``) or a framed stream chunk.

    On a datagram a missing Content-Length means the body is the rest of the datagram (RFC 2543 compat)
    and octets past the declared length are dropped (RFC 3261 18.3). Raises :class:`SipParseError` with
    the status to answer, the header at fault and whatever Via/From/To/Call-ID/CSeq could be copied.
    ``strict=False`` only frames and splits (start line, headers, body), for tools reading our own output.
    """
    if len(data) > limits.max_message:
        raise SipParseError("message too large", sip_status=513)
    # RFC 3261 7.5: CRLFs before the start line are ignored
    data = data.lstrip(b"\r\n")
    if not data:
        raise SipParseError("empty message", sip_status=0)
    head, body = _split_head(data)
    is_request = not data.startswith((b"SIP/", b"sip/"))
    try:
        start, headers = _parse_head(head, limits)
    except SipParseError as exc:
        exc.is_request = is_request
        if is_request and exc.sip_status == 513:
            # over a header limit: the head is still bounded by max_message, so read it without the
            # per-header limits just to copy Via/From/To/Call-ID/CSeq into the 513
            try:
                start, headers = _parse_head(head, _UNBOUNDED_HEADERS)
                exc.copied = copyable_headers(headers)
                exc.method = start.split(" ", 1)[0]
            except SipMessageError:
                pass
        raise
    try:
        message = _parse_start(start, headers)
        if body is None:
            raise SipParseError("no empty line after the header fields")
        length = _content_length(headers)
        if length is None:
            if stream:
                raise SipParseError("missing Content-Length on a stream", header="Content-Length")
        elif length > len(body):
            raise SipParseError("Content-Length larger than the body", header="Content-Length")
        else:
            body = body[:length]
        message.body = body
        if not strict:
            return message
        if isinstance(message, Request):
            _check_request(message)
        else:
            _check_response(message)
        return message
    except SipMessageError as exc:
        exc.is_request = is_request
        if is_request:
            exc.method = start.split(" ", 1)[0] if " " in start else None
            exc.copied = copyable_headers(headers)
        raise


def _parse_start(start: str, headers: Headers) -> Request | Response:
    if start[:4].upper() == "SIP/":
        m = STATUS_LINE_RE.fullmatch(start)
        if m is None:
            raise SipParseError("malformed Status-Line", sip_status=0)
        status = int(m.group("code"))
        if not 100 <= status <= 699:
            raise SipParseError("status code out of range", sip_status=0)
        return Response(status, m.group("reason"), headers, b"", m.group("version").upper())
    method, sp1, rest = start.partition(" ")
    if method in METHODS and sp1:
        uri, sp2, version = rest.partition(" ")
        if sp2 and uri and version == "SIP/2.0":
            # the usual "<METHOD> <uri> SIP/2.0" (a known method is a token, neither part holds a space):
            # what REQUEST_LINE_RE and VERSION_RE accept, without the two regex calls
            return Request(method, uri, headers, b"", "SIP/2.0")
    m2 = REQUEST_LINE_RE.fullmatch(start)
    if m2 is None:
        # a first line without any SIP version is not SIP at all: answering it would only feed scanners
        status = 400 if "SIP/" in start.upper() else 0
        raise SipParseError("malformed Request-Line", header="Request-Line", sip_status=status)
    version = m2.group("version")
    if not VERSION_RE.fullmatch(version):
        raise SipParseError("malformed SIP-Version in the Request-Line", header="Request-Line")
    if version.upper() != "SIP/2.0":
        raise SipParseError(f"SIP version {version} is not supported", sip_status=505, header="Request-Line")
    return Request(m2.group("method"), m2.group("uri"), headers, b"", "SIP/2.0")


class StreamBuffer:
    """Frames SIP messages out of a byte stream (TCP, TLS): Content-Length is mandatory there.

    ``feed`` returns whole messages, CRLF keepalives (RFC 5626 3.5.1) as the string ``"ping"``, and parse
    errors as exceptions *in the list*; after a framing error the stream cannot be resynchronised, so
    ``broken`` is set and the connection should be closed once the error is answered.
    """

    __slots__ = ("_buf", "broken", "limits")

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._buf = bytearray()
        self.limits = limits
        self.broken = False

    def feed(self, data: bytes) -> list[Request | Response | SipMessageError | str]:
        out: list[Request | Response | SipMessageError | str] = []
        if self.broken:
            return out
        self._buf += data
        buf = self._buf
        while buf:
            if buf[:4] == b"\r\n\r\n":
                del buf[:4]
                out.append("ping")
                continue
            if buf[:2] == b"\r\n":
                if len(buf) < 4 and b"\r\n\r\n".startswith(bytes(buf)):
                    break  # maybe the start of a keepalive
                del buf[:2]
                continue
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self.limits.max_message:
                    out.append(SipParseError("header block too large", sip_status=513))
                    self.broken = True
                    buf.clear()
                break
            head = bytes(buf[:end])
            length = _stream_length(head)
            if isinstance(length, SipMessageError):
                out.append(self._error_for(head, length))
                self.broken = True
                buf.clear()
                break
            total = end + 4 + length
            if total > self.limits.max_message:
                out.append(self._error_for(head, SipParseError("message too large", sip_status=513)))
                self.broken = True
                buf.clear()
                break
            if len(buf) < total:
                break
            chunk = bytes(buf[:total])
            del buf[:total]
            try:
                out.append(parse_message(chunk, limits=self.limits, stream=True))
            except SipMessageError as exc:
                out.append(exc)
        return out

    def _error_for(self, head: bytes, exc: SipMessageError) -> SipMessageError:
        try:
            parse_message(head + b"\r\n\r\n", limits=self.limits)
        except SipMessageError as inner:
            exc.copied, exc.is_request, exc.method = inner.copied, inner.is_request, inner.method
            return exc
        except Exception:  # pragma: no cover - parse_message only raises SipMessageError
            return exc
        exc.is_request = not head.startswith(b"SIP/")
        try:
            start, headers = _parse_head(head, self.limits)
            exc.copied = copyable_headers(headers)
            exc.method = start.split(" ", 1)[0]
        except SipMessageError:
            pass
        return exc


def _stream_length(head: bytes) -> int | SipMessageError:
    lower = head.lower()
    found: list[int] = []
    for marker in (b"\ncontent-length", b"\nl"):
        pos = lower.find(marker)
        while pos >= 0:
            rest = lower[pos + len(marker) :]
            stripped = rest.lstrip(b" \t")
            if stripped[:1] == b":":
                found.append(pos)
            pos = lower.find(marker, pos + 1)
    if not found:
        return SipParseError("missing Content-Length on a stream", header="Content-Length")
    if len(found) > 1:
        return SipParseError("more than one Content-Length header", header="Content-Length")
    line_end = head.find(b"\n", found[0] + 1)
    line = head[found[0] + 1 : line_end if line_end >= 0 else len(head)]
    value = line.split(b":", 1)[1].strip()
    if not value.isdigit() or len(value) > 9:
        return SipParseError("Content-Length is not a number", header="Content-Length")
    return int(value)


class _Entropy:
    """Bytes from ``os.urandom``, read 4 KiB at a time: tags, branches and nonce salts are drawn for
    nearly every message, and one ``getrandom`` system call each was a visible share of a REGISTER."""

    __slots__ = ("_buf", "_lock", "_pos")

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0
        self._lock = threading.Lock()  # callable from any thread: two must never get the same bytes
        os.register_at_fork(after_in_child=self._reset)  # a child must not reuse the parent's bytes

    def _reset(self) -> None:
        self._buf = b""
        self._pos = 0

    def take(self, n: int) -> bytes:
        with self._lock:
            pos = self._pos
            end = pos + n
            if end > len(self._buf):
                self._buf = os.urandom(max(4096, n))
                pos, end = 0, n
            self._pos = end
            return self._buf[pos:end]


_ENTROPY = _Entropy()


def random_bytes(n: int) -> bytes:
    """``n`` cryptographically random bytes (``os.urandom`` quality)."""
    return _ENTROPY.take(n)


def new_tag() -> str:
    return _ENTROPY.take(6).hex()


def new_branch() -> str:
    return "z9hG4bK" + _ENTROPY.take(10).hex()


def make_response(
    request: Request | SipMessageError,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    server: str | None = None,
) -> Response:
    """A response to ``request`` (RFC 3261 8.2.6): Via/From/To/Call-ID/CSeq copied, a To tag added.

    ``request`` may be the error raised while parsing a request; then only the headers that parsed on
    their own are copied.
    """
    resp_headers = Headers()
    items = resp_headers._items
    if isinstance(request, Request):
        source = request.headers._items
        copied = [(k, n, v) for (k, n, v) in source if k in _COPIED]
    else:
        copied = [(header_key(n), n, v) for (n, v) in request.copied]
    has_tag: bool | None = None
    if isinstance(request, Request) and status > 100:
        try:
            has_tag = request.to.tag is not None
        except SipMessageError:
            has_tag = None
    for key, name, value in copied:
        if key == "to" and status > 100:
            if has_tag is None:
                items.append((key, name, _tag_to(value, to_tag)))
            else:
                items.append((key, name, value if has_tag else f"{value};tag={to_tag or new_tag()}"))
        else:
            items.append((key, name, value))
    if server:
        items.append(("server", "Server", server))
    for name, value in headers or ():
        key = header_key(name)
        items.append((key, CANONICAL_NAMES.get(key, name), value))
    return Response(status, reason, resp_headers, body)


def _tag_to(value: str, to_tag: str | None) -> str:
    try:
        addr = parse_name_addr(value, "To")
    except SipMessageError:
        return value
    if addr.tag is not None:
        return value
    return f"{value};tag={to_tag or new_tag()}"
