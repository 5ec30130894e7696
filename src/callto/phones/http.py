"""``phone_http``: make a desk phone act through its own web server (click-to-call strategy).

The URL comes from the vendor's catalog template (``/servlet?key=number={number}`` for Yealink,
``/command.htm?number={number}`` for Snom...), with every value URL-encoded and the number checked to
be dial digits only. :func:`build_action_request` is pure, so the Link's ``lan_relay`` can perform
the very same request on the phone's LAN; :func:`phone_http` performs it with httpx, a short
timeout, and the phone's web credentials (answering whichever Basic or Digest challenge the phone
sends), and always returns a typed :class:`PhoneHttpResult`: it never raises an httpx error.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx

from callto.dialer.numbers import DIALED_RE, InvalidNumber
from callto.phones.catalog import Catalog, Vendor, default_catalog
from callto.phones.errors import InvalidPhoneConfig, UnsupportedAction

DEFAULT_TIMEOUT = 2.0
_HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9\-]{1,63})*$")
_DTMF_RE = re.compile(r"^[0-9*#]{1,32}$")


class PhoneHttpOutcome(enum.StrEnum):
    OK = "ok"
    UNREACHABLE = "unreachable"
    AUTH_FAILED = "auth-failed"
    REJECTED = "rejected"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True, slots=True)
class PhoneTarget:
    """Where a phone's web server is and how to log in (the password is the phone's web password)."""

    vendor: str
    host: str
    port: int = 80
    scheme: Literal["http", "https"] = "http"
    username: str | None = None
    password: str = field(default="", repr=False)
    # Phones ship self-signed certificates; the web password is still protected by TLS against a
    # passive listener. Set True when the phone has a certificate the server can check.
    verify_tls: bool = False


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """One HTTP request to a phone, ready to send (by the server or by the Link on the phone's LAN)."""

    method: Literal["GET"]
    url: str
    auth: Literal["basic", "digest", "query", "none"]
    username: str
    password: str = field(repr=False)
    verify_tls: bool
    success_status: tuple[int, ...]
    failure_body: str | None

    @property
    def redacted_url(self) -> str:
        """The URL with any password in the query replaced, for logs and attempt records."""
        if self.auth != "query" or not self.password:
            return self.url
        return self.url.replace(quote(self.password, safe=""), "***")

    def to_json(self) -> dict[str, Any]:
        """What the server hands the Link for ``lan_relay`` (it holds the password only in memory)."""
        return {
            "method": self.method,
            "url": self.url,
            "auth": self.auth,
            "username": self.username,
            "password": self.password,
            "verify_tls": self.verify_tls,
            "success_status": list(self.success_status),
            "failure_body": self.failure_body,
        }


@dataclass(frozen=True, slots=True)
class PhoneHttpResult:
    outcome: PhoneHttpOutcome
    detail: str
    status_code: int | None = None
    url: str | None = None
    elapsed_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome is PhoneHttpOutcome.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "detail": self.detail,
            "status_code": self.status_code,
            "url": self.url,
            "elapsed_ms": round(self.elapsed_ms, 1),
        }


def _check_host(host: str) -> str:
    candidate = host.strip()
    try:
        address = ipaddress.ip_address(candidate.strip("[]"))
    except ValueError:
        if not _HOST_RE.fullmatch(candidate):
            raise InvalidPhoneConfig(f"{candidate[:40]!r} is not a phone host name or IP address.") from None
        return candidate
    return f"[{address}]" if address.version == 6 else str(address)


def _keys_for(vendor: Vendor, digits: str) -> str:
    mapping = vendor.keypad_map
    separator = mapping.get("separator", ";")
    return separator.join(mapping.get(ch, ch) for ch in digits)


def build_action_request(
    target: PhoneTarget,
    action: str,
    *,
    number: str | None = None,
    digits: str | None = None,
    catalog: Catalog | None = None,
) -> ActionRequest:
    """Build the request for ``action`` (``call``/``answer``/``hangup``/``hold``/``dtmf``).

    ``number`` is what the switch would dial (``classify(...).dialed``); ``digits`` are DTMF keys.
    Raises :class:`UnsupportedAction` when the vendor has no such action, :class:`InvalidNumber` for
    a number that is not dial digits, :class:`InvalidPhoneConfig` for a bad host or port.
    """
    vendor = (catalog or default_catalog()).vendor(target.vendor)
    template = vendor.action_template(action)
    if template is None:
        raise UnsupportedAction(
            f"{vendor.name} phones have no HTTP '{action}' action in the catalog.",
            details={"vendor": vendor.id, "action": action},
        )
    if not 1 <= int(target.port) <= 65535:
        raise InvalidPhoneConfig(f"Port {target.port} is not a TCP port.")
    host = _check_host(target.host)
    values: dict[str, str] = {
        "username": target.username or vendor.http.username,
        "password": target.password,
    }
    if "{number}" in template:
        if number is None or not DIALED_RE.fullmatch(number):
            raise InvalidNumber(
                "The number for a desk phone must be dial digits only (0-9 * # +).",
                reason="not-dial-digits",
                raw=number,
            )
        values["number"] = number
    if "{digits}" in template or "{keys}" in template:
        if digits is None or not _DTMF_RE.fullmatch(digits):
            raise InvalidNumber("DTMF must be 1 to 32 of 0-9 * #.", reason="bad-dtmf", raw=digits)
        values["digits"] = digits
        values["keys"] = _keys_for(vendor, digits)
    encoded = {name: quote(value, safe="" if name != "keys" else ";") for name, value in values.items()}
    path = template.format(**encoded)
    default_port = 443 if target.scheme == "https" else 80
    netloc = host if int(target.port) == default_port else f"{host}:{int(target.port)}"
    return ActionRequest(
        method="GET",
        url=f"{target.scheme}://{netloc}{path}",
        auth=vendor.http.auth,
        username=values["username"],
        password=target.password,
        verify_tls=target.verify_tls,
        success_status=vendor.http.success_status,
        failure_body=vendor.http.failure_body,
    )


def _auth_for_challenge(request: ActionRequest, challenge: str) -> httpx.Auth | None:
    scheme = challenge.strip().split(" ", 1)[0].lower()
    if scheme == "digest":
        return httpx.DigestAuth(request.username, request.password)
    if scheme == "basic":
        return httpx.BasicAuth(request.username, request.password)
    return None


async def perform(
    request: ActionRequest, *, timeout: float = DEFAULT_TIMEOUT, client: httpx.AsyncClient | None = None
) -> PhoneHttpResult:
    """Send ``request``; map every outcome (including every httpx error) to a :class:`PhoneHttpResult`."""
    started = time.monotonic()
    url = request.redacted_url

    def result(outcome: PhoneHttpOutcome, detail: str, status: int | None = None) -> PhoneHttpResult:
        return PhoneHttpResult(outcome, detail, status, url, (time.monotonic() - started) * 1000)

    own_client = client is None
    http = client or httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 1.0)),
        verify=request.verify_tls,
        follow_redirects=False,
        trust_env=False,
    )
    try:
        auth: httpx.Auth | None = None
        if request.auth == "basic":
            auth = httpx.BasicAuth(request.username, request.password)
        elif request.auth == "digest":
            auth = httpx.DigestAuth(request.username, request.password)
        response = await http.get(request.url, auth=auth or httpx.USE_CLIENT_DEFAULT)
        if response.status_code == 401 and request.auth in ("basic", "digest", "none"):
            # Firmware differs from the catalog's expectation: answer the challenge actually sent.
            retry_auth = _auth_for_challenge(request, response.headers.get("www-authenticate", ""))
            if retry_auth is not None and type(retry_auth) is not type(auth):
                response = await http.get(request.url, auth=retry_auth)
    except httpx.TimeoutException:
        return result(PhoneHttpOutcome.UNREACHABLE, f"the phone did not answer within {timeout:g} s")
    except httpx.ConnectError as exc:
        return result(PhoneHttpOutcome.UNREACHABLE, f"cannot connect to the phone: {_short(exc)}")
    except httpx.HTTPError as exc:
        return result(PhoneHttpOutcome.UNREACHABLE, f"HTTP error talking to the phone: {_short(exc)}")
    except Exception as exc:
        # httpx auth flows can raise outside httpx.HTTPError on malformed challenges.
        return result(PhoneHttpOutcome.REJECTED, f"unexpected answer from the phone: {_short(exc)}")
    finally:
        if own_client:
            await http.aclose()

    status = response.status_code
    if status == 401:
        return result(PhoneHttpOutcome.AUTH_FAILED, "the phone refused the web credentials", status)
    if status == 403:
        return result(
            PhoneHttpOutcome.REJECTED,
            "the phone forbids remote control from this address (check its allow list)",
            status,
        )
    if status not in request.success_status:
        return result(PhoneHttpOutcome.REJECTED, f"the phone answered HTTP {status}", status)
    if request.failure_body and re.search(request.failure_body, response.text[:4096]):
        return result(PhoneHttpOutcome.REJECTED, "the phone answered that the command failed", status)
    return result(PhoneHttpOutcome.OK, "the phone accepted the command", status)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:160]


async def phone_http(
    target: PhoneTarget,
    action: str,
    *,
    number: str | None = None,
    digits: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    client: httpx.AsyncClient | None = None,
    catalog: Catalog | None = None,
) -> PhoneHttpResult:
    """Make the phone perform ``action``. Returns ``unsupported`` when the vendor has no such action;
    raises only :class:`InvalidNumber` / :class:`InvalidPhoneConfig` for arguments that are wrong."""
    try:
        request = build_action_request(target, action, number=number, digits=digits, catalog=catalog)
    except UnsupportedAction as exc:
        return PhoneHttpResult(PhoneHttpOutcome.UNSUPPORTED, exc.message)
    return await perform(request, timeout=timeout, client=client)
