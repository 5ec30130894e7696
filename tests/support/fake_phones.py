"""A fake of a Yealink desk phone's HTTP "Action URI" remote control, for click-to-call tests.

A real desk phone cannot run here, so this small HTTP server (stdlib ``http.server`` in a thread,
bound to 127.0.0.1 on a free port) stands in for its web server. It follows Yealink's documented
contract as closely as the documentation goes:

Source: Yealink Administrator Guide for SIP-T2/T4/T5 series, chapter "Action URI"
(``http(s)://<phoneIPAddress>/servlet?key=<variable value>``), and its "Variable values" table.

- Paths: ``GET /servlet?key=<value>[;<value>...]``; the legacy forms
  ``/cgi-bin/ConfigManApp.com?key=...`` and ``/cgi-bin/cgiServer.exx?key=...`` behave the same.
- Values understood: ``number=<digits>`` (with an optional ``&outgoing_uri=<account>`` parameter)
  places a call to ``<digits>``; ``OK`` / ``ENTER`` / ``SPEAKER`` answer; ``CALLEND`` / ``CANCEL`` end
  the call; ``F_HOLD`` holds; ``0``-``9``, ``STAR``, ``POUND`` press keypad keys (DTMF in a call).
  Several values may be chained with ``;`` and are performed in order.
- Auth: the phone's web credentials. HTTP Basic by default (the guide's ``user:pass@phone`` form),
  or HTTP Digest (MD5, ``qop=auth``) with ``auth="digest"``, as newer firmware does. A request
  without valid credentials gets ``401`` with a ``WWW-Authenticate`` challenge.
- Trusted senders: ``features.action_uri_limit_ip``. A request from an address not in
  ``allowed_ips`` gets ``403`` (the real phone instead pops "Allow remote control?" on screen the
  first time; a test cannot press OK, so the fake refuses).
- Success is ``200 OK`` (the guide: "the phone will perform the specified action and respond with
  a 200 OK message"). A request without ``key`` gets ``400`` (the guide does not say; the fake
  chooses to be strict so that malformed URLs fail loudly).

Every request is recorded (``requests``), and each performed action calls ``on_action(action,
argument)`` so an end-to-end test can make a real SIP user agent (baresip) dial the number.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

LOOPBACK = "127.0.0.1"
ACTION_PATHS = ("/servlet", "/cgi-bin/ConfigManApp.com", "/cgi-bin/cgiServer.exx")
_ANSWER = {"OK", "ENTER", "SPEAKER"}
_HANGUP = {"CALLEND", "CANCEL"}
_KEYPAD = {**{str(d): str(d) for d in range(10)}, "STAR": "*", "POUND": "#"}


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    query: str
    client_ip: str
    status: int
    actions: tuple[tuple[str, str | None], ...] = ()


@dataclass
class FakeYealinkPhone:
    """Start with ``with FakeYealinkPhone(...) as phone:``; ``phone.port`` is where it listens."""

    username: str = "admin"
    password: str = "admin"
    auth: Literal["basic", "digest"] = "basic"
    allowed_ips: tuple[str, ...] = (LOOPBACK,)
    on_action: Callable[[str, str | None], None] | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    realm: str = "Yealink"
    _server: ThreadingHTTPServer | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def port(self) -> int:
        assert self._server is not None, "the fake phone is not started"
        return int(self._server.server_address[1])

    @property
    def actions(self) -> list[tuple[str, str | None]]:
        with self._lock:
            return [action for req in self.requests for action in req.actions]

    def start(self) -> FakeYealinkPhone:
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer((LOOPBACK, 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-yealink", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeYealinkPhone:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


def _parse_actions(query: str) -> list[tuple[str, str | None]] | None:
    """``key=number=123&outgoing_uri=x`` -> [("call", "123")]; ``key=1;2;STAR`` -> dtmf 1, 2, *."""
    params = parse_qs(query, keep_blank_values=True)
    keys = params.get("key")
    if not keys or not keys[0]:
        return None
    out: list[tuple[str, str | None]] = []
    for value in keys[0].split(";"):
        value = value.strip()
        if value.startswith("number="):
            out.append(("call", unquote(value[len("number=") :])))
        elif value.upper() in _ANSWER:
            out.append(("answer", None))
        elif value.upper() in _HANGUP:
            out.append(("hangup", None))
        elif value.upper() == "F_HOLD":
            out.append(("hold", None))
        elif value.upper() in _KEYPAD:
            out.append(("dtmf", _KEYPAD[value.upper()]))
        else:
            out.append(("key", value))
    return out


def _make_handler(phone: FakeYealinkPhone) -> type[BaseHTTPRequestHandler]:
    nonces: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        server_version = "yealink embed httpd"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return  # keep test output quiet; requests are recorded instead

        def _reply(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
            data = body.encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _challenge(self) -> dict[str, str]:
            if phone.auth == "basic":
                return {"WWW-Authenticate": f'Basic realm="{phone.realm}"'}
            nonce = secrets.token_hex(16)
            nonces.add(nonce)
            return {"WWW-Authenticate": f'Digest realm="{phone.realm}", nonce="{nonce}", qop="auth", algorithm=MD5'}

        def _authorized(self) -> bool:
            header = self.headers.get("Authorization", "")
            if phone.auth == "basic":
                if not header.startswith("Basic "):
                    return False
                try:
                    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    return False
                return secrets.compare_digest(user, phone.username) and secrets.compare_digest(password, phone.password)
            if not header.startswith("Digest "):
                return False
            fields = {}
            for part in header[7:].split(","):
                name, _, value = part.strip().partition("=")
                fields[name] = value.strip('"')
            if fields.get("username") != phone.username or fields.get("nonce") not in nonces:
                return False

            def md5(text: str) -> str:
                return hashlib.md5(text.encode()).hexdigest()

            ha1 = md5(f"{phone.username}:{phone.realm}:{phone.password}")
            ha2 = md5(f"GET:{fields.get('uri', '')}")
            nonce, nc, cnonce, qop = (fields.get(k, "") for k in ("nonce", "nc", "cnonce", "qop"))
            expected = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
            return secrets.compare_digest(expected, fields.get("response", ""))

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            client_ip = self.client_address[0]

            def done(status: int, body: str, actions: tuple[tuple[str, str | None], ...] = (), **hdr: str) -> None:
                phone._record(RecordedRequest(parts.path, parts.query, client_ip, status, actions))
                self._reply(status, body, hdr or None)

            if parts.path not in ACTION_PATHS:
                done(404, "Not Found")
                return
            if client_ip not in phone.allowed_ips:
                done(403, "Forbidden")
                return
            if not self._authorized():
                phone._record(RecordedRequest(parts.path, parts.query, client_ip, 401))
                self._reply(401, "Unauthorized", self._challenge())
                return
            actions = _parse_actions(parts.query)
            if actions is None:
                done(400, "Bad Request")
                return
            done(200, "OK", tuple(actions))
            if phone.on_action is not None:
                for action, argument in actions:
                    phone.on_action(action, argument)

    return Handler
