"""RFC 3261 section 25 grammar: the regexes, each under the ABNF it implements, and the value types they build.

This module owns the syntax of header *values* (URIs, name-addr / addr-spec, Via, CSeq, generic parameters,
comma lists). Framing and the header block live in :mod:`callto.sip.message`. Every parse function raises
:class:`~callto.sip.errors.SipParseError` naming the header it was given, never anything else.

Messages are decoded as UTF-8 with ``surrogateescape`` so arbitrary bytes survive a round trip; after
unfolding, ``LWS`` is plain ``[ \\t]+`` and ``SWS`` is ``[ \\t]*``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from callto.sip.errors import SipParseError

# --- basic rules ----------------------------------------------------------------------------------------
# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" )
TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
TOKEN_RE = re.compile(TOKEN)

# SWS = [LWS] ; LWS = [*WSP CRLF] 1*WSP  (folding already removed)
SWS = r"[ \t]*"

# quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
# qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
# quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
QUOTED = r'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*"'
QUOTED_RE = re.compile(QUOTED)

# word = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" / "(" / ")" / "<" / ">" /
#           ":" / "\" / DQUOTE / "/" / "[" / "]" / "?" / "{" / "}" )
# callid = word [ "@" word ]
WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
CALLID_RE = re.compile(rf"{WORD}(?:@{WORD})?")

# escaped = "%" HEXDIG HEXDIG
ESCAPED = r"%[0-9A-Fa-f]{2}"
# unreserved = alphanum / mark ; mark = "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"
UNRESERVED = r"A-Za-z0-9\-_.!~*'()"

# --- SIP-URI (RFC 3261 19.1.1, 25.1) --------------------------------------------------------------------
# user = 1*( unreserved / escaped / user-unreserved ) ; user-unreserved = "&" / "=" / "+" / "$" / "," / ";"
#                                                                          / "?" / "/"
USER = rf"[{UNRESERVED}&=+$,;?/%]+"  # "%" checked apart by BAD_ESCAPE_RE: one class is much faster
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
PASSWORD = rf"[{UNRESERVED}&=+$,%]*"
# hostname = *( domainlabel "." ) toplabel [ "." ] ; IPv4address ; IPv6reference = "[" IPv6address "]"
# (toplabel's leading ALPHA is relaxed so an IPv4address also matches; dotted quads are checked below.)
LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
HOSTNAME = rf"{LABEL}(?:\.{LABEL})*\.?"
IPV6REF = r"\[[0-9A-Fa-f:.]+\]"
HOST = rf"(?:{IPV6REF}|{HOSTNAME})"
# uri-parameter = pname [ "=" pvalue ] ; paramchar = param-unreserved / unreserved / escaped
# param-unreserved = "[" / "]" / "/" / ":" / "&" / "+" / "$"
PARAMCHAR = rf"[\[\]/:&+${UNRESERVED}%]"
URI_PARAMS = rf"(?:;{PARAMCHAR}+(?:={PARAMCHAR}+)?)*"
# headers = "?" header *( "&" header ) ; header = hname "=" hvalue
# hname = 1*( hnv-unreserved / unreserved / escaped ) ; hvalue = *( hnv-unreserved / unreserved / escaped )
# hnv-unreserved = "[" / "]" / "/" / "?" / ":" / "+" / "$"
HNV = rf"[\[\]/?:+${UNRESERVED}%]"
URI_HEADERS = rf"{HNV}+={HNV}*(?:&{HNV}+={HNV}*)*"
# SIP-URI = "sip:" [ userinfo ] hostport uri-parameters [ headers ]
# userinfo = ( user / telephone-subscriber ) [ ":" password ] "@" ; hostport = host [ ":" port ]
# (userinfo is matched on its own, split at the single "@", so a long "@"-less URI cannot backtrack.)
SIP_SCHEME_RE = re.compile(r"(?P<scheme>[Ss][Ii][Pp][Ss]?):")
USERINFO_RE = re.compile(rf"(?P<user>{USER})(?::(?P<password>{PASSWORD}))?")
HOSTPART_RE = re.compile(
    rf"(?P<host>{HOST})(?::(?P<port>[0-9]{{1,5}}))?(?P<params>{URI_PARAMS})(?:\?(?P<headers>{URI_HEADERS}))?"
)
# absoluteURI = scheme ":" ( hier-part / opaque-part ) ; scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
# (kept opaque: any run of URI characters, never SP, quotes or angle brackets)
ABSOLUTE_URI_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+\-.]*):(?P<rest>[^\s<>\"]+)")
IPV4_RE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
# every "%" in a SIP URI must start an escaped octet (escaped = "%" HEXDIG HEXDIG)
BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")

# --- header parameters ----------------------------------------------------------------------------------
# generic-param = token [ EQUAL gen-value ] ; gen-value = token / host / quoted-string
# SEMI = SWS ";" SWS ; EQUAL = SWS "=" SWS
GEN_PARAM_RE = re.compile(rf"{SWS};{SWS}(?P<name>{TOKEN})(?:{SWS}={SWS}(?P<value>{TOKEN}|{IPV6REF}|{QUOTED}))?{SWS}")

# --- name-addr / addr-spec (From, To, Contact, Route, ...) ---------------------------------------------
# name-addr = [ display-name ] LAQUOT addr-spec RAQUOT ; display-name = *(token LWS) / quoted-string
# LAQUOT = SWS "<" ; RAQUOT = ">" SWS  (no LWS inside the angle brackets)
NAME_ADDR_RE = re.compile(rf"{SWS}(?P<display>{QUOTED}|(?:{TOKEN}(?:[ \t]+{TOKEN})*)?){SWS}<(?P<uri>[^<>\s]+)>{SWS}")
# addr-spec without angle brackets: the URI cannot hold ",", ";" or "?" (RFC 3261 20.10), so it ends at ";".
ADDR_SPEC_RE = re.compile(rf"{SWS}(?P<uri>[^\s;,<>?\"]+){SWS}")

# --- Via (RFC 3261 20.42) ------------------------------------------------------------------------------
# via-parm = sent-protocol LWS sent-by *( SEMI via-params )
# sent-protocol = protocol-name SLASH protocol-version SLASH transport ; SLASH = SWS "/" SWS
# sent-by = host [ COLON port ] ; COLON = SWS ":" SWS
VIA_RE = re.compile(
    rf"{SWS}(?P<proto>{TOKEN}){SWS}/{SWS}(?P<version>{TOKEN}){SWS}/{SWS}(?P<transport>{TOKEN})[ \t]+"
    rf"(?P<host>{HOST})(?:{SWS}:{SWS}(?P<port>[0-9]{{1,5}}))?"
)

# --- CSeq (RFC 3261 20.16) -----------------------------------------------------------------------------
# CSeq = "CSeq" HCOLON 1*DIGIT LWS Method
CSEQ_RE = re.compile(rf"{SWS}(?P<seq>[0-9]+)[ \t]+(?P<method>{TOKEN}){SWS}")

# --- start lines (RFC 3261 25.1) -----------------------------------------------------------------------
# Request-Line = Method SP Request-URI SP SIP-Version CRLF  (exactly one SP each: extra SP is a 400)
REQUEST_LINE_RE = re.compile(rf"(?P<method>{TOKEN}) (?P<uri>[^ ]+) (?P<version>[^ ]+)")
# Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF ; Status-Code = 3DIGIT
STATUS_LINE_RE = re.compile(r"(?P<version>[Ss][Ii][Pp]/[0-9]+\.[0-9]+) (?P<code>[0-9]{3}) (?P<reason>.*)")
# SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT
VERSION_RE = re.compile(r"[Ss][Ii][Pp]/[0-9]+\.[0-9]+")
# message-header = header-name HCOLON header-value ; HCOLON = *( SP / HTAB ) ":" SWS
HEADER_LINE_RE = re.compile(rf"(?P<name>{TOKEN})[ \t]*:[ \t]*(?P<value>.*)", re.S)
# delta-seconds = 1*DIGIT
DIGITS_RE = re.compile(r"[0-9]+")
# qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
QVALUE_RE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")

MAX_UINT32 = 2**32 - 1

Params = tuple[tuple[str, str | None], ...]


def _param(params: Params, name: str) -> str | None:
    lname = name.lower()
    for key, value in params:
        if key.lower() == lname:
            return value
    return None


def _has_param(params: Params, name: str) -> bool:
    lname = name.lower()
    return any(key.lower() == lname for key, _ in params)


def _format_params(params: Params) -> str:
    if not params:
        return ""
    return "".join([f";{k}" if v is None else f";{k}={v}" for k, v in params])  # a list: join's fast path


@dataclass(frozen=True, slots=True)
class SipURI:
    """A ``sip:`` or ``sips:`` URI; ``raw`` is the exact text it was parsed from (or built as)."""

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None
    params: Params = ()
    headers: str | None = None
    raw: str = ""

    def param(self, name: str) -> str | None:
        return _param(self.params, name)

    def has_param(self, name: str) -> bool:
        return _has_param(self.params, name)

    @property
    def transport(self) -> str:
        value = self.param("transport")
        if value:
            return value.lower()
        return "tls" if self.scheme == "sips" else "udp"

    def __str__(self) -> str:
        if self.raw:
            return self.raw
        return self.build()

    def build(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(_format_params(self.params))
        if self.headers:
            out.append("?" + self.headers)
        return "".join(out)

    @classmethod
    def make(
        cls,
        host: str,
        *,
        user: str | None = None,
        port: int | None = None,
        scheme: str = "sip",
        params: Params = (),
    ) -> SipURI:
        uri = cls(scheme, user, None, host, port, params, None, "")
        return cls(scheme, user, None, host, port, params, None, uri.build())


@dataclass(frozen=True, slots=True)
class TelURI:
    """A ``tel:`` URI (RFC 3966), kept mostly opaque: the number and its parameters."""

    number: str
    params: Params = ()
    raw: str = ""
    scheme: str = "tel"

    def __str__(self) -> str:
        return self.raw


@dataclass(frozen=True, slots=True)
class AbsoluteURI:
    """Any other scheme (``http:``, ``urn:``, ``nobodyKnowsThisScheme:``): kept opaque."""

    scheme: str
    rest: str
    raw: str = ""

    def __str__(self) -> str:
        return self.raw


URI = SipURI | TelURI | AbsoluteURI

_URI_PARAM_SPLIT_RE = re.compile(rf";({PARAMCHAR}+)(?:=({PARAMCHAR}+))?")


# Parsed values are immutable, and the same URIs and From/To values come back in every request of a
# device (and the same Request-URI from all of them): a small memo saves most of the parsing. Bounded,
# and emptied when full, so a peer sending endless distinct values only costs itself the memo.
_MEMO_MAX = 32768  # above the devices of a large installation: per-device URIs come back at every refresh
_URI_MEMO: dict[tuple[str, bool], URI] = {}
_NAME_ADDR_MEMO: dict[str, NameAddr] = {}
_TAGGED_MEMO_MAX = 4096
_TAGGED_MEMO: dict[str, NameAddr] = {}  # From/To values with a tag, bounded apart (see parse_name_addr)


def parse_uri(text: str, *, header: str = "Request-URI", allow_headers: bool = True) -> URI:
    """Parse a URI; unknown schemes come back as :class:`AbsoluteURI`, never an error."""
    key = (text, allow_headers)
    found = _URI_MEMO.get(key)
    if found is not None:
        return found
    uri = _parse_uri(text, header, allow_headers)
    if len(_URI_MEMO) >= _MEMO_MAX:
        _URI_MEMO.clear()
    _URI_MEMO[key] = uri
    return uri


def _parse_uri(text: str, header: str, allow_headers: bool) -> URI:
    sm = SIP_SCHEME_RE.match(text)
    if sm is not None:
        rest = text[sm.end() :]
        if "%" in rest and BAD_ESCAPE_RE.search(rest):
            raise SipParseError(f"bad %-escape in {header} URI", header=header)
        user: str | None = None
        password: str | None = None
        at = rest.find("@")
        if at >= 0:
            if rest.find("@", at + 1) >= 0:
                raise SipParseError(f"more than one @ in {header} URI", header=header)
            um = USERINFO_RE.fullmatch(rest, 0, at)
            if um is None:
                raise SipParseError(f"malformed userinfo in {header} URI", header=header)
            user, password = um.group("user"), um.group("password")
            rest = rest[at + 1 :]
        m = HOSTPART_RE.fullmatch(rest)
        if m is None:
            raise SipParseError(f"malformed {sm.group('scheme').lower()}: URI in {header}", header=header)
        host = m.group("host")
        if IPV4_RE.fullmatch(host) and any(int(part) > 255 for part in host.split(".")):
            raise SipParseError(f"bad IPv4 address in {header} URI", header=header)
        port_text = m.group("port")
        port = int(port_text) if port_text else None
        if port is not None and port > 65535:
            raise SipParseError(f"port out of range in {header} URI", header=header)
        headers = m.group("headers")
        if headers is not None and not allow_headers:
            raise SipParseError(f"{header} URI must not carry ?headers", header=header)
        params_text = m.group("params")
        params: Params = ()
        if params_text:
            # ";lr" keeps None so it stays distinct from ";lr="
            params = tuple((k, v if v != "" else None) for k, v in _URI_PARAM_SPLIT_RE.findall(params_text))
        return SipURI(sm.group("scheme").lower(), user, password, host, port, params, headers, text)
    m2 = ABSOLUTE_URI_RE.fullmatch(text)
    if m2 is None:
        raise SipParseError(f"malformed URI in {header}", header=header)
    scheme = m2.group("scheme").lower()
    if scheme in ("sip", "sips"):
        raise SipParseError(f"malformed {scheme}: URI in {header}", header=header)
    if scheme == "tel":
        number, _, rest = m2.group("rest").partition(";")
        tparams: list[tuple[str, str | None]] = []
        if rest:
            for item in rest.split(";"):
                k, eq, v = item.partition("=")
                tparams.append((k, v if eq else None))
        return TelURI(number, tuple(tparams), text)
    return AbsoluteURI(scheme, m2.group("rest"), text)


# the characters of a token and of a Call-ID word: ``not s.strip(CHARS)`` tells whether ``s`` holds only
# those, in one C call where a regex match costs several times more
_TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~"
_WORD_CHARS = _TOKEN_CHARS + "()<>:\\\"/[]?{}"


def parse_params(text: str, pos: int, header: str) -> Params:
    """Parse ``*( SEMI generic-param )`` from ``pos`` to the end of ``text``."""
    rest = text[pos:]
    if rest[:1] == ";" and " " not in rest and "\t" not in rest and '"' not in rest and "[" not in rest:
        # no blanks, quotes or IPv6 references: each parameter is "name" or "name=value", both tokens
        # (GEN_PARAM_RE's language then); anything else takes the regex path below for its error
        fast: list[tuple[str, str | None]] = []
        for item in rest[1:].split(";"):
            name, eq, value = item.partition("=")
            if not name or name.strip(_TOKEN_CHARS) or (eq and (not value or value.strip(_TOKEN_CHARS))):
                break
            fast.append((name, value if eq else None))
        else:
            return tuple(fast)
    params: list[tuple[str, str | None]] = []
    end = len(text)
    match = GEN_PARAM_RE.match
    while pos < end:
        m = match(text, pos)
        if m is None:
            if not text[pos:].strip():
                break
            raise SipParseError(f"malformed parameter in {header}", header=header)
        name, value = m.groups()  # the only two groups
        params.append((name, value))
        pos = m.end()
    return tuple(params)


def unquote(text: str) -> str:
    """The content of a quoted-string with quoted-pairs resolved."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        if "\\" not in inner:
            return inner
        out: list[str] = []
        i = 0
        while i < len(inner):
            ch = inner[i]
            if ch == "\\" and i + 1 < len(inner):
                out.append(inner[i + 1])
                i += 2
            else:
                out.append(ch)
                i += 1
        return "".join(out)
    return text


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class NameAddr:
    """A From/To/Contact/Route value: optional display name, the URI text exactly as sent, header params."""

    uri_text: str
    uri: URI
    display: str | None = None
    params: Params = ()
    angle: bool = True

    @property
    def tag(self) -> str | None:
        return _param(self.params, "tag")

    def param(self, name: str) -> str | None:
        return _param(self.params, name)

    def has_param(self, name: str) -> bool:
        return _has_param(self.params, name)

    def with_param(self, name: str, value: str | None) -> NameAddr:
        kept = tuple((k, v) for k, v in self.params if k.lower() != name.lower())
        return NameAddr(self.uri_text, self.uri, self.display, (*kept, (name, value)), True)

    def __str__(self) -> str:
        head = ""
        if self.display is not None:
            head = quote(self.display) + " "
        return f"{head}<{self.uri_text}>{_format_params(self.params)}"


def parse_name_addr(text: str, header: str) -> NameAddr:
    """``( name-addr / addr-spec ) *( SEMI param )`` as in From, To, Contact, Route."""
    found = _NAME_ADDR_MEMO.get(text)
    if found is not None:
        return found
    found = _TAGGED_MEMO.get(text)
    if found is not None:
        return found
    addr = _parse_name_addr(text, header)
    if "tag=" not in text:  # a tagged From/To belongs to one dialog: keeping it would only push others out
        if len(_NAME_ADDR_MEMO) >= _MEMO_MAX:
            _NAME_ADDR_MEMO.clear()
        _NAME_ADDR_MEMO[text] = addr
    else:
        # ...of the long-lived memo; a small one of its own still serves the requests of one exchange
        # (a REGISTER and its authorized retry, an INVITE and its ACK) and a phone's refreshes
        if len(_TAGGED_MEMO) >= _TAGGED_MEMO_MAX:
            _TAGGED_MEMO.clear()
        _TAGGED_MEMO[text] = addr
    return addr


def _parse_name_addr(text: str, header: str) -> NameAddr:
    m = NAME_ADDR_RE.match(text)
    if m is not None:
        display_raw = m.group("display")
        display: str | None
        if not display_raw:
            display = None
        elif display_raw[0] == '"':
            display = unquote(display_raw)
        else:
            display = display_raw
        uri_text = m.group("uri")
        uri = parse_uri(uri_text, header=header)
        return NameAddr(uri_text, uri, display, parse_params(text, m.end(), header), True)
    if "<" in text or '"' in text:
        raise SipParseError(f"malformed name-addr in {header}", header=header)
    m = ADDR_SPEC_RE.match(text)
    if m is None:
        raise SipParseError(f"malformed addr-spec in {header}", header=header)
    uri_text = m.group("uri")
    uri = parse_uri(uri_text, header=header, allow_headers=False)
    return NameAddr(uri_text, uri, None, parse_params(text, m.end(), header), False)


@dataclass(frozen=True, slots=True)
class Via:
    """One via-parm: sent-protocol, sent-by and parameters (branch, received, rport, ...)."""

    transport: str
    host: str
    port: int | None
    params: Params = ()
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        return _param(self.params, "branch")

    @property
    def received(self) -> str | None:
        return _param(self.params, "received")

    @property
    def has_rport(self) -> bool:
        return _has_param(self.params, "rport")

    @property
    def rport(self) -> int | None:
        value = _param(self.params, "rport")
        return int(value) if value and value.isdigit() else None

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def rfc3261_branch(self) -> bool:
        branch = self.branch
        return branch is not None and branch.startswith("z9hG4bK")

    def with_params(self, **updates: str | None) -> Via:
        """A copy with the named params set (``received=...``, ``rport=...``), others kept in order."""
        keys = {k.lower() for k in updates}
        kept = [(k, v) for k, v in self.params if k.lower() not in keys]
        kept.extend(updates.items())
        return Via(self.transport, self.host, self.port, tuple(kept), self.protocol)

    def __str__(self) -> str:
        # every request received is stamped (received=, rport=) and written back: sent_by inlined
        port = self.port
        sent_by = self.host if port is None else f"{self.host}:{port}"
        return f"{self.protocol}/{self.transport} {sent_by}{_format_params(self.params)}"


# "SIP/2.0/UDP host:port" (a Via up to its first ";") -> (transport, host, port): a device sends the same
# one in every request, where the branch after it changes. Bounded, emptied when full.
_SENT_BY_MEMO: dict[str, tuple[str, str, int | None]] = {}


def parse_via(text: str) -> Via:
    semi = text.find(";")
    head = text if semi < 0 else text[:semi]
    found = _SENT_BY_MEMO.get(head)
    if found is not None:
        transport, host, port = found
        end = len(head)
    else:
        m = VIA_RE.match(text)
        if m is None:
            raise SipParseError("malformed Via", header="Via")
        proto, version, transport, host, port_text = m.groups()
        if version != "2.0" or proto.upper() != "SIP":
            raise SipParseError("Via sent-protocol is not SIP/2.0", header="Via")
        port = int(port_text) if port_text else None
        if port is not None and port > 65535:
            raise SipParseError("Via port out of range", header="Via")
        transport = transport.upper()
        end = m.end()
        if end == len(head):  # the match covers the text before the parameters: it is all it depends on
            if len(_SENT_BY_MEMO) >= 4096:
                _SENT_BY_MEMO.clear()
            _SENT_BY_MEMO[head] = (transport, host, port)
    params = parse_params(text, end, "Via")
    for key, value in params:
        lkey = key.lower()
        if lkey == "branch" and not value:
            raise SipParseError("Via branch without a value", header="Via")
        if lkey == "rport" and value is not None and not (value.isdigit() and int(value) <= 65535):
            raise SipParseError("Via rport is not a port number", header="Via")
    return Via(transport, host, port, params)


@dataclass(frozen=True, slots=True)
class CSeq:
    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


# methods whose CSeq the fast path of parse_cseq takes as they are (all tokens); others go through CSEQ_RE
_CSEQ_METHODS = frozenset(
    ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO",
     "REFER", "MESSAGE", "UPDATE")
)


def parse_cseq(text: str) -> CSeq:
    seq_text, space, method = text.partition(" ")
    if space and method in _CSEQ_METHODS and seq_text.isascii() and seq_text.isdigit():
        # "<digits> <METHOD>": what CSEQ_RE would match, without the regex call
        seq = int(seq_text)
        if seq > MAX_UINT32:
            raise SipParseError("CSeq number larger than 2**32-1", header="CSeq")
        return CSeq(seq, method)
    m = CSEQ_RE.fullmatch(text)
    if m is None:
        raise SipParseError("malformed CSeq", header="CSeq")
    seq = int(m.group("seq"))
    if seq > MAX_UINT32:
        raise SipParseError("CSeq number larger than 2**32-1", header="CSeq")
    return CSeq(seq, m.group("method"))


def parse_call_id(text: str) -> str:
    value = text.strip()
    # callid = word [ "@" word ]: at most one "@", each side one or more word characters (CALLID_RE)
    left, at, right = value.partition("@")
    if left and not left.strip(_WORD_CHARS) and (not at or (right and not right.strip(_WORD_CHARS))):
        return value
    if not CALLID_RE.fullmatch(value):
        raise SipParseError("malformed Call-ID", header="Call-ID")
    return value


def _digits(value: str) -> bool:
    """``1*DIGIT`` (ASCII digits only: str.isdigit alone takes other scripts' digits too); no regex call."""
    return value.isascii() and value.isdigit()


def parse_uint(text: str, header: str, *, maximum: int = MAX_UINT32) -> int:
    value = text.strip()
    if not _digits(value):
        raise SipParseError(f"{header} is not a number", header=header)
    number = int(value)
    if number > maximum:
        raise SipParseError(f"{header} is out of range", header=header)
    return number


def parse_delta_seconds(text: str, header: str) -> int:
    """delta-seconds = 1*DIGIT; RFC 3261 20.19/20.10: a value above 2**32-1 is taken as 2**32-1."""
    value = text.strip()
    if not _digits(value):
        raise SipParseError(f"{header} is not a number of seconds", header=header)
    return MAX_UINT32 if len(value) > 10 else min(int(value), MAX_UINT32)


def split_list(text: str) -> list[str]:
    """Split a header value on the commas that separate list elements (not those in quotes or <...>)."""
    if "," not in text:
        return [text.strip()]
    out: list[str] = []
    start = 0
    in_quote = False
    in_angle = False
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if in_quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
        elif ch == "<":
            in_angle = True
        elif ch == ">":
            in_angle = False
        elif ch == "," and not in_angle:
            out.append(text[start:i].strip())
            start = i + 1
        i += 1
    out.append(text[start:].strip())
    return out


@dataclass(frozen=True, slots=True)
class ContactValue:
    """A Contact element: the name-addr plus the values a registrar needs, or ``star`` for ``*``."""

    raw: str
    addr: NameAddr | None = None
    star: bool = False
    expires: int | None = None
    q: float | None = None
    instance: str | None = None
    reg_id: int | None = None
    extra: tuple[str, ...] = field(default=())


_CONTACT_MEMO: dict[str, ContactValue] = {}


def parse_contact(text: str) -> ContactValue:
    """One Contact element; the same text (a device's every REGISTER) is parsed once (bounded memo)."""
    found = _CONTACT_MEMO.get(text)
    if found is not None:
        return found
    contact = _parse_contact(text)
    if len(_CONTACT_MEMO) >= _MEMO_MAX:
        _CONTACT_MEMO.clear()
    _CONTACT_MEMO[text] = contact
    return contact


def _parse_contact(text: str) -> ContactValue:
    if text.strip() == "*":
        return ContactValue(text.strip(), None, True)
    addr = parse_name_addr(text, "Contact")
    expires: int | None = None
    q: float | None = None
    instance: str | None = None
    reg_id: int | None = None
    for key, value in addr.params:
        lkey = key.lower()
        if lkey == "expires":
            if value is None:
                raise SipParseError("Contact expires without a value", header="Contact")
            # RFC 3261 10.2.1.1: an overlarge delta-seconds is treated as 2**32-1
            expires = parse_delta_seconds(value, "Contact")
        elif lkey == "q":
            if value is None or not QVALUE_RE.fullmatch(value):
                raise SipParseError("Contact q is not a qvalue", header="Contact")
            q = float(value)
        elif lkey == "+sip.instance":
            instance = unquote(value) if value else None
        elif lkey == "reg-id":
            if value is None or not value.isdigit():
                raise SipParseError("Contact reg-id is not a number", header="Contact")
            reg_id = int(value)
    return ContactValue(text.strip(), addr, False, expires, q, instance, reg_id)


# --- media types (Content-Type / Accept) ---------------------------------------------------------------
# media-type = m-type SLASH m-subtype *(SEMI m-parameter)
MEDIA_TYPE_RE = re.compile(rf"{SWS}(?P<type>{TOKEN}){SWS}/{SWS}(?P<subtype>{TOKEN})")


def parse_media_type(text: str, header: str = "Content-Type") -> tuple[str, Params]:
    m = MEDIA_TYPE_RE.match(text)
    if m is None:
        raise SipParseError(f"malformed media type in {header}", header=header)
    params = parse_params(text, m.end(), header)
    return f"{m.group('type')}/{m.group('subtype')}".lower(), params


# --- auth-param lists (WWW-Authenticate, Authorization; RFC 3261 25.1, RFC 7616) -----------------------
# challenge = ("Digest" LWS digest-cln *(COMMA digest-cln)) / other-challenge
# auth-param = auth-param-name EQUAL ( token / quoted-string )
AUTH_SCHEME_RE = re.compile(rf"{SWS}(?P<scheme>{TOKEN})(?:[ \t]+|$)")
AUTH_PARAM_RE = re.compile(rf"{SWS}(?P<name>{TOKEN}){SWS}={SWS}(?P<value>{QUOTED}|[^\s,\"]+){SWS}(?:,|$)")


def parse_auth(text: str, header: str) -> tuple[str, dict[str, str]]:
    """``scheme`` and its lower-cased parameter names mapped to unquoted values."""
    m = AUTH_SCHEME_RE.match(text)
    if m is None:
        raise SipParseError(f"malformed {header}", header=header)
    fast = _auth_params_fast(text, m.end())
    if fast is not None:
        return m.group("scheme"), fast
    params: dict[str, str] = {}
    pos = m.end()
    end = len(text)
    while pos < end:
        pm = AUTH_PARAM_RE.match(text, pos)
        if pm is None:
            raise SipParseError(f"malformed parameter in {header}", header=header)
        name, value = pm.groups()
        name = name.lower()
        if name in params:
            raise SipParseError(f"duplicate {name} in {header}", header=header)
        params[name] = unquote(value) if value[:1] == '"' else value
        pos = pm.end()
    return m.group("scheme"), params


def _auth_params_fast(text: str, pos: int) -> dict[str, str] | None:
    """The auth-params from ``pos`` when each is plain (``name=token`` or ``name="printable text"`` without
    backslashes), found with str methods; None for anything else, which the regex path then decides. On
    what it accepts it gives what AUTH_PARAM_RE's loop gives: a digest response carries ~10 parameters,
    one regex match each was the largest part of checking it."""
    params: dict[str, str] = {}
    end = len(text)
    while pos < end:
        eq = text.find("=", pos)
        if eq < 0:
            return None
        name = text[pos:eq].strip(" \t")
        if not name or name.strip(_TOKEN_CHARS):
            return None
        v = eq + 1
        while v < end and text[v] in " \t":
            v += 1
        if v < end and text[v] == '"':
            close = text.find('"', v + 1)
            if close < 0:
                return None
            value = text[v + 1 : close]
            if "\\" in value or not value.isprintable():
                return None
            after = close + 1
            comma = text.find(",", after)
            stop = end if comma < 0 else comma
            if text[after:stop].strip(" \t"):
                return None
        else:
            comma = text.find(",", v)
            stop = end if comma < 0 else comma
            value = text[v:stop].rstrip(" \t")
            # [^\s,"]+: printable excludes every whitespace character but the space
            if not value or '"' in value or " " in value or not value.isprintable():
                return None
        name = name.lower()
        if name in params:
            return None  # the regex path raises the duplicate
        params[name] = value
        pos = stop + 1
        if comma >= 0 and pos >= end:
            return None  # a trailing comma: AUTH_PARAM_RE wants another parameter there
    return params
