"""Link's HTTP client for the callto server: address parsing, explicit TLS trust, typed errors.

Every failure comes out as a :class:`~callto.link.errors.LinkError` whose message can be shown to the user
as it is ("Cannot reach the server at ...", "Wrong username or password", ...). The server's own error
answers (``{"error", "message", "details"}``) keep their id and message.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import re
import socket
import ssl
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from callto.link.errors import (
    AuthFailed,
    InvalidServerAddress,
    LinkError,
    LinkNotEnabled,
    OtpRequired,
    ServerError,
    ServerUnreachable,
    SessionExpired,
    UntrustedCertificate,
)
from callto.link.i18n import EN, tr

API = "/api/v1"
DEFAULT_TIMEOUT = 8.0
LINK_NOT_ENABLED = "Phone Link is not enabled for your user. Ask your administrator to enable Phone Link for your user."
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?$")


# ----------------------------------------------------------------------------------------------- address
MOVE_TIMEOUT = 45.0  # a moved call's target rings up to 20 s (callto.sip.move), plus the media switch-over


def parse_server_address(text: str) -> str:
    """Turn what a user types (``pbx.example.com``, ``10.0.0.5:8443``, ``https://pbx/``) into a base URL.

    HTTPS is the default when no scheme is given; a pasted ``/api/v1...`` suffix is dropped; a path prefix
    (a reverse proxy sub-path) is kept.
    """
    raw = (text or "").strip()
    if not raw:
        raise InvalidServerAddress("Enter the server address, for example pbx.example.com or 192.168.1.10.")
    if any(c.isspace() for c in raw):
        raise InvalidServerAddress(f"The server address {raw!r} contains spaces.")
    # A bare IPv6 address ("fe80::1", "::1") has colons that urlsplit would read as a port.
    try:
        ip6 = ipaddress.IPv6Address(raw.strip("[]"))
    except ValueError:
        pass
    else:
        raw = f"[{ip6}]"
    if "://" not in raw:
        raw = "https://" + raw
    parts = urlsplit(raw)
    scheme = {"https": "https", "http": "http", "wss": "https", "ws": "http"}.get(parts.scheme.lower())
    if scheme is None:
        raise InvalidServerAddress(f"The server address must start with https:// or http://, not {parts.scheme}://.")
    try:
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise InvalidServerAddress(f"The port in {text.strip()!r} is not a number from 1 to 65535.") from exc
    if not host:
        raise InvalidServerAddress(f"There is no host name or IP address in {text.strip()!r}.")
    if parts.username or parts.password:
        raise InvalidServerAddress("Do not put a username or password in the server address.")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.match(host) or host.replace(".", "").isdigit():
            raise InvalidServerAddress(f"{host!r} is not a valid host name or IP address.") from None
        netloc = host.lower().rstrip(".")
    else:
        netloc = f"[{ip}]" if ip.version == 6 else str(ip)
    if port is not None:
        if not 0 < port < 65536:
            raise InvalidServerAddress(f"The port {port} is not from 1 to 65535.")
        if (scheme, port) not in (("https", 443), ("http", 80)):
            netloc += f":{port}"
    path = parts.path.rstrip("/")
    idx = path.find(API)
    if idx >= 0:
        path = path[:idx]
    return f"{scheme}://{netloc}{path}"


def host_port(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    assert parts.hostname is not None
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def events_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{parts.path}{API}/events"


# ----------------------------------------------------------------------------------------------- TLS
def fingerprint(der: bytes) -> str:
    """SHA-256 fingerprint as browsers show it: ``AB:CD:...``."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def normalize_fingerprint(fp: str) -> str:
    hexes = re.sub(r"[^0-9A-Fa-f]", "", fp).upper()
    return ":".join(hexes[i : i + 2] for i in range(0, len(hexes), 2))


def fetch_certificate(base_url: str, timeout: float = 4.0) -> bytes:
    """The DER certificate the server presents, fetched WITHOUT verification, only to show and pin it."""
    host, port = host_port(base_url)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            ctx.wrap_socket(sock, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise network_error(base_url, exc) from exc
    if not der:
        raise UntrustedCertificate("The server presented no certificate.")
    return der


def pem_from_der(der: bytes) -> str:
    return ssl.DER_cert_to_PEM_cert(der)


def ssl_context(trusted_cert_pem: str | None) -> ssl.SSLContext:
    """System CAs by default; with a pinned certificate, trust exactly that one and nothing else.

    A pinned self-signed certificate rarely names the address the user typed (IP vs name), and pinning
    the exact certificate is stronger than a name check, so the hostname check is off in that case only.
    """
    ctx = ssl.create_default_context()
    if trusted_cert_pem:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cadata=trusted_cert_pem)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
        # The pinned certificate is usually a leaf, not a CA; accept it as the anchor by itself.
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return ctx


def _is_cert_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        if isinstance(seen, ssl.SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def untrusted_error(base_url: str) -> UntrustedCertificate:
    """The error for an unverifiable certificate, carrying its fingerprint so the user can trust it."""
    try:
        der = fetch_certificate(base_url)
    except LinkError:
        return UntrustedCertificate("The server's TLS certificate is not trusted by this computer.")
    fp = fingerprint(der)
    return UntrustedCertificate(
        "The server's TLS certificate is not trusted by this computer (self-signed or unknown issuer). "
        f"Trust it only if your administrator confirms the fingerprint {fp}.",
        details={"fingerprint": fp, "pem": pem_from_der(der)},
    )


# ----------------------------------------------------------------------------------------------- models
@dataclass(frozen=True)
class Device:
    id: int
    kind: str
    label: str
    online: bool
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Device:
        return cls(
            id=int(d["id"]),
            kind=str(d.get("kind", "")),
            label=str(d.get("label") or d.get("kind") or d["id"]),
            online=bool(d.get("online", False)),
            raw=dict(d),
        )

    @property
    def lan_address(self) -> tuple[str, int | None] | None:
        """``(host, web port)`` of the owner's desk phone as ``GET /me`` gives it (``lan_address``); the port
        is ``None`` when the server does not know it (the phone is registered but not provisioned)."""
        lan = self.raw.get("lan_address")
        if not isinstance(lan, dict) or not isinstance(lan.get("host"), str) or not lan["host"]:
            return None
        port = lan.get("port")
        return str(lan["host"]).strip("[]"), port if isinstance(port, int) and 0 < port < 65536 else None

    @property
    def address(self) -> str | None:
        """The desk phone's LAN address: ``lan_address`` from the server, else a flat field of an older one."""
        lan = self.lan_address
        if lan is not None:
            return lan[0]
        for key in ("ip", "address"):
            value = self.raw.get(key)
            if isinstance(value, str) and value:
                return value.rsplit(":", 1)[0] if value.count(":") == 1 else value
        return None

    def describe(self) -> str:
        kind = tr(f"device.{self.kind}") if f"device.{self.kind}" in EN else self.kind
        state = tr("device.online" if self.online else "device.offline")
        return f"{self.label} ({kind}, {state})"


@dataclass(frozen=True)
class Me:
    id: int
    username: str
    display_name: str
    extension: str
    main_device_id: int | None
    devices: tuple[Device, ...]
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # The user's own preferences kept by the server (incoming_popup, ringtone, language), shared with the
    # web CTI; None from a server that has none (Link then keeps its own switch).
    preferences: dict[str, Any] | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Me:
        main = d.get("main_device_id")
        return cls(
            id=int(d["id"]),
            username=str(d.get("username", "")),
            display_name=str(d.get("display_name") or d.get("username", "")),
            extension=str(d.get("extension") or ""),
            main_device_id=int(main) if isinstance(main, int | str) and str(main).isdigit() else None,
            devices=tuple(Device.from_json(x) for x in d.get("devices", [])),
            raw=dict(d),
            preferences=dict(d["preferences"]) if isinstance(d.get("preferences"), dict) else None,
        )

    @property
    def link_device(self) -> Device | None:
        return next((dv for dv in self.devices if dv.kind == "link"), None)

    @property
    def main_device(self) -> Device | None:
        return next((dv for dv in self.devices if dv.id == self.main_device_id), None)

    def device(self, device_id: int) -> Device | None:
        return next((dv for dv in self.devices if dv.id == device_id), None)


@dataclass(frozen=True)
class LoginResult:
    token: str
    expires_at: str | None
    user: dict[str, Any]


# ----------------------------------------------------------------------------------------------- client
class LinkClient:
    """Async client for the endpoints Link uses. Use as ``async with LinkClient(...) as c:``."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        trusted_cert_pem: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.trusted_cert_pem = trusted_cert_pem
        verify: ssl.SSLContext | bool = ssl_context(trusted_cert_pem) if self.base_url.startswith("https") else True
        self._http = httpx.AsyncClient(
            base_url=self.base_url + API, timeout=timeout, verify=verify, follow_redirects=False
        )

    async def __aenter__(self) -> LinkClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- plumbing
    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        timeout: float | None = None,
    ) -> Any:
        hdrs = dict(headers or {})
        if auth and self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        extra: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        try:
            resp = await self._http.request(method, path, json=json, headers=hdrs, **extra)
        except httpx.TimeoutException as exc:
            raise network_error(self.base_url, exc) from exc
        except (httpx.ConnectError, httpx.NetworkError, httpx.ProtocolError) as exc:
            if _is_cert_error(exc):
                raise untrusted_error(self.base_url) from exc
            raise network_error(self.base_url, exc) from exc
        if resp.status_code >= 400:
            raise _error_from(resp)
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError as exc:
            host, port = host_port(self.base_url)
            raise ServerError(
                f"The server at {self.base_url} answered with something that is not callto's API "
                f"(HTTP {resp.status_code}). Is the address right?",
                status=502,
                details={"text": "net.notCallto", "params": {"host": host, "port": port, "status": resp.status_code}},
            ) from exc

    # -- endpoints
    async def health(self) -> dict[str, Any]:
        data = await self._request("GET", "/health", auth=False)
        return data if isinstance(data, dict) else {}

    async def login(self, username: str, password: str, otp: str | None = None) -> LoginResult:
        body: dict[str, Any] = {"username": username, "password": password}
        if otp:
            body["otp"] = otp.strip()
        data = await self._request("POST", "/auth/login", json=body, auth=False)
        self.token = str(data["token"])
        return LoginResult(token=self.token, expires_at=data.get("expires_at"), user=data.get("user") or {})

    async def logout(self) -> None:
        try:
            await self._request("POST", "/auth/logout")
        finally:
            self.token = None

    async def me(self) -> Me:
        return Me.from_json(await self._request("GET", "/me"))

    async def devices(self) -> list[Device]:
        data = await self._request("GET", "/me/devices")
        items = data.get("devices", data) if isinstance(data, dict) else data
        return [Device.from_json(d) for d in items]

    async def set_main_device(self, device_id: int) -> None:
        await self._request("PUT", "/me/main-device", json={"device_id": device_id})

    async def set_preferences(self, **changes: bool | str | None) -> dict[str, Any]:
        """Change some of the user's server-side preferences; the answer is all of them."""
        data = await self._request("PATCH", "/me/preferences", json=changes)
        return data if isinstance(data, dict) else {}

    async def device_sip(self, device_id: int) -> dict[str, Any]:
        data = await self._request("GET", f"/me/devices/{device_id}/sip")
        return data if isinstance(data, dict) else {}

    async def place_call(
        self, to: str, *, device_id: int | None = None, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"to": to}
        if device_id is not None:
            body["device_id"] = device_id
        key = idempotency_key or str(uuid.uuid4())
        data = await self._request("POST", "/calls", json=body, headers={"Idempotency-Key": key})
        return data if isinstance(data, dict) else {}

    async def screen_pop_url(self, number: str, name: str, call_id: str) -> dict[str, Any]:
        """The screen pop address the server filled in for a call (``url`` null: none) and ``on``."""
        query = urlencode({"number": number[:256], "name": name[:256], "call_id": call_id[:128]})
        data = await self._request("GET", f"/me/screen-pop/url?{query}")
        return data if isinstance(data, dict) else {}

    async def get_call(self, call_id: str) -> dict[str, Any]:
        data = await self._request("GET", f"/calls/{call_id}")
        return data if isinstance(data, dict) else {}

    async def move_call(self, device_id: int, call_id: str | None = None) -> dict[str, Any]:
        """Move the user's answered call to their device ``device_id``; answers once it talks there (the
        device may ring for up to ~20 s, hence the longer wait)."""
        body: dict[str, Any] = {"device_id": device_id, "call_id": call_id}
        data = await self._request("POST", "/calls/move", json=body, timeout=MOVE_TIMEOUT)
        return data if isinstance(data, dict) else {}

    async def hangup(self, call_id: str) -> None:
        await self._request("DELETE", f"/calls/{call_id}")

    async def diagnostics(self) -> list[dict[str, Any]]:
        data = await self._request("GET", "/me/diagnostics")
        checks = data.get("checks", []) if isinstance(data, dict) else []
        return [c for c in checks if isinstance(c, dict)]


async def sign_in(client: LinkClient, username: str, password: str, otp: str | None = None) -> Me:
    """Log in and check that Link is enabled for the user; on refusal the new session is closed again."""
    await client.login(username, password, otp)
    me = await client.me()
    if me.link_device is None:
        with contextlib.suppress(LinkError):
            await client.logout()
        raise LinkNotEnabled(LINK_NOT_ENABLED, details={"username": username, "text": "link.notEnabled"})
    return me


# ----------------------------------------------------------------------------------------------- errors
def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


# What an OpenSSL client reports when the other end does not speak TLS (plain HTTP on that port).
_NOT_TLS = ("WRONG_VERSION_NUMBER", "wrong version number", "record layer failure", "packet length too long",
            "http request", "UNEXPECTED_RECORD")


def network_error(base_url: str, exc: BaseException) -> ServerUnreachable:
    """A failed connection in plain words with its likely fix, instead of the library's message.

    ``details['text']``/``['params']`` let the UI word it in the user's language (:mod:`callto.link.i18n`).
    """
    host, port = host_port(base_url)
    https = base_url.startswith("https://")
    chain = _chain(exc)
    texts = " | ".join(str(e) for e in chain)
    params: dict[str, Any] = {"host": host, "port": port}
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        key, message = "net.timeout", f"The server at {host}:{port} did not answer in time."
    elif https and any(marker in texts for marker in _NOT_TLS):
        key = "net.notHttps"
        message = (
            f"The server at {host}:{port} does not speak HTTPS on that port. If it serves plain HTTP there, "
            f"type http://{host}:{port}; otherwise check the port number."
        )
    elif any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in texts or (
        "Errno 111" in texts
    ):
        key = "net.refused"
        message = (
            f"Nothing answers at {host}:{port}. Check the port number (the one in callto's web address) "
            "and that the server is running."
        )
    elif any(isinstance(e, socket.gaierror) for e in chain) or "Name or service not known" in texts or (
        "getaddrinfo" in texts or "nodename" in texts
    ):
        key = "net.unknownHost"
        message = f"The name {host} is not known. Check the spelling of the server address, or your network or VPN."
    elif not https and isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        key = "net.tryHttps"
        message = (
            f"The server at {host}:{port} closed the connection without answering. If it uses HTTPS, "
            f"type https://{host}:{port}; otherwise check the port number."
        )
    else:
        problem = _plain(exc)[:160]
        key, params["problem"] = "net.unreachable", problem
        message = f"Cannot reach the server at {host}:{port} ({problem}). Check the address, your network or VPN."
    return ServerUnreachable(message, details={"url": base_url, "text": key, "params": params})


def _plain(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused (nothing listens on that port)"
    if "Name or service not known" in text or "getaddrinfo" in text or "nodename" in text:
        return "the name does not resolve (check spelling, DNS or VPN)"
    return text


_TEXT_IDS = {
    "invalid-credentials": "err.invalid-credentials",
    "otp-required": "login.otpHelp",
    "invalid-otp": "err.invalid-otp",
    "invalid-token": "login.expired",
    "too-many-attempts": "link.tooManyAttempts",
    # a repeat of a click on another node while the first is still being placed (docs/cluster.md)
    "idempotency-in-progress": "err.idempotency-in-progress",
    # 503: the token is fine (never a SessionExpired); the session is kept and the event stream retries
    "storage-unavailable": "link.serverRetrying",
}
_FRIENDLY = {
    "invalid-credentials": "Wrong username or password.",
    "otp-required": "Enter the 6-digit code from your authenticator app.",
    "invalid-token": "Your session has expired. Sign in again.",
    "too-many-attempts": "Too many attempts. Wait a minute and try again.",
}


def _error_from(resp: httpx.Response) -> LinkError:
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    err_id = str(body.get("error") or f"http-{resp.status_code}")
    message = str(body.get("message") or f"The server answered HTTP {resp.status_code}.")
    raw_details = body.get("details")
    details: dict[str, Any] = dict(raw_details) if isinstance(raw_details, dict) else {}
    friendly = _FRIENDLY.get(err_id, message)
    if err_id in _TEXT_IDS:
        # The UI words these in the language it shows (callto.link.i18n); the server's words stay in logs.
        details = {**details, "text": _TEXT_IDS[err_id]}
    if err_id == "otp-required":
        return OtpRequired(friendly, details=details)
    if err_id == "invalid-token" or (resp.status_code == 401 and err_id not in _FRIENDLY):
        return SessionExpired(_FRIENDLY["invalid-token"], details={**details, "text": "login.expired"})
    if err_id == "invalid-credentials":
        return AuthFailed(friendly, details=details)
    if resp.status_code == 404 and err_id in ("http-404", "not-found") and "/calls" in str(resp.url):
        return ServerError(
            "This server does not offer click-to-call yet (POST /api/v1/calls is missing).",
            error="not-supported",
            status=404,
        )
    return ServerError(friendly, error=err_id, status=resp.status_code, details=details)
