"""Browser-side defences on every HTTP answer: a strict Content-Security-Policy, no framing, no MIME
sniffing, no referrer, HSTS over HTTPS, and ``Cache-Control: no-store`` on API and provisioning answers.

A pure ASGI middleware (no per-request task or body copy, unlike Starlette's ``BaseHTTPMiddleware``):
it only adds headers to ``http.response.start``. A header a route set itself is kept (a page with its own,
stricter policy keeps it).

Why each one:

* ``Content-Security-Policy``: scripts and styles only from this server's own files (the web app is built
  without inline script), so an injected ``<script>`` or ``onclick=`` does not run and cannot read the
  session token; ``connect-src`` is this server only (its HTTP API and its ``ws``/``wss`` event and SIP
  sockets), so nothing can be sent elsewhere; ``frame-ancestors 'none'`` (and ``X-Frame-Options: DENY``
  for old browsers) so no other site can frame the CTI and steer a click onto a number (clickjacking).
  callto Link shows the page in its own Qt WebEngine window, a top-level page, not a frame: it needs no
  exception.
* ``Strict-Transport-Security`` on HTTPS answers only (over HTTP it means nothing, and browsers ignore it
  while the certificate is not trusted, so a self-signed first run is not locked out).
* ``Cache-Control: no-store`` on ``/api/`` and ``/provisioning/``: their answers carry personal data and
  secrets, which must not stay in a shared or disk cache.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HSTS = b"max-age=15552000"  # 180 days
_HOST = re.compile(rb"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")

# The web app: its own scripts, styles and images (the favicon is a data: URL), audio from the page's own
# streams, and connections to this server only.
_APP_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; font-src 'self'; connect-src 'self'{ws}; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's interactive API docs are an inline script loading Swagger UI from its CDN: allowed there and
# only there (the page holds no data of its own; a token typed into it is sent to this server only).
_DOCS_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_COMMON = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
_NO_STORE_PREFIXES = ("/api/", "/provisioning/")


def content_security_policy(path: str, host: bytes | None) -> bytes:
    """The policy for an answer to ``path`` asked of ``host`` (the request's Host header)."""
    if path == "/api/docs" or path.startswith("/api/docs/"):
        return _DOCS_POLICY.encode()
    # 'self' covers ws:/wss: to the same host in current browsers; naming them keeps older ones working.
    # The Host header is only trusted when it looks like a host, so it cannot inject a directive.
    ws = ""
    if host and _HOST.match(host):
        name = host.decode("ascii")
        ws = f" ws://{name} wss://{name}"
    return _APP_POLICY.format(ws=ws).encode()


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The policy by (docs page?, Host): a server is asked under a handful of names, and formatting
        # the policy on every answer would cost more than everything else here.
        self._policies: dict[tuple[bool, bytes | None], bytes] = {}

    def _policy(self, path: str, host: bytes | None) -> bytes:
        docs = path == "/api/docs" or path.startswith("/api/docs/")
        key = (docs, host)
        policy = self._policies.get(key)
        if policy is None:
            if len(self._policies) > 64:  # bounded: Host is whatever the client sends
                self._policies.clear()
            policy = self._policies[key] = content_security_policy(path, host)
        return policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                host = next((v for k, v in scope.get("headers", ()) if k == b"host"), None)
                extra: list[tuple[bytes, bytes]] = [h for h in _COMMON if h[0] not in present]
                if b"content-security-policy" not in present:
                    extra.append((b"content-security-policy", self._policy(path, host)))
                if https and b"strict-transport-security" not in present:
                    extra.append((b"strict-transport-security", HSTS))
                if b"cache-control" not in present and path.startswith(_NO_STORE_PREFIXES):
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)
