"""``lan_relay``: make a desk phone's HTTP action request from this computer, for the server.

The server asks Link to do it when it cannot reach the phone itself but Link sits on the phone's LAN. Link
is careful about what it relays: only to a private or loopback IP literal (never a name, never the
internet), only for a device the server names and that is one of the logged-in user's own desk phones,
only to the address the server gave for it, GET/POST only, no redirects, no proxies, a short timeout.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from callto.link.client import Device
from callto.link.errors import RelayRefused

MAX_TIMEOUT = 5.0
DEFAULT_TIMEOUT = 3.0
ALLOWED_METHODS = ("GET", "POST")


@dataclass(frozen=True)
class RelayRequest:
    command_id: str
    device_id: int
    method: str
    url: str
    auth: httpx.Auth | None
    timeout: float
    body: str | None = None
    content_type: str | None = None
    username: str = ""
    password: str = ""
    success_status: tuple[int, ...] = ()
    failure_body: str | None = None
    verify_tls: bool = False


def _ip_of(url: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RelayRefused(f"Link only relays http/https requests, not {parts.scheme or 'no scheme'}.")
    if parts.username or parts.password:
        raise RelayRefused("Credentials must come in 'auth', not inside the URL.")
    host = parts.hostname or ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise RelayRefused(f"Link only relays to a desk phone's IP address, not to the name {host!r}.") from None
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        raise RelayRefused(f"{ip} is not a phone's address.")
    if not (ip.is_private or ip.is_loopback):
        raise RelayRefused(f"{ip} is not on a private network; Link only relays on the LAN.")
    return ip


def _auth(spec: Any) -> httpx.Auth | None:
    if not spec:
        return None
    if not isinstance(spec, dict):
        raise RelayRefused("The relay command's 'auth' is not an object.")
    username = str(spec.get("username") or "")
    password = str(spec.get("password") or "")
    kind = str(spec.get("type") or "basic").lower()
    if not username and kind != "none":
        return None
    if kind == "basic":
        return httpx.BasicAuth(username, password)
    if kind == "digest":
        return httpx.DigestAuth(username, password)
    if kind in ("none", "query"):
        # "query": the vendor takes the credentials as URL parameters, already in the URL.
        return None
    raise RelayRefused(f"Unknown auth type {kind!r} in the relay command.")


def validate(data: dict[str, Any], phones: dict[int, Device]) -> RelayRequest:
    """Check a ``lan_relay`` command against the user's own desk phones; raise :class:`RelayRefused`.

    Two shapes are understood: the flat one (``method``, ``url``, ``auth: {type, username, password}``)
    and the server's dialer form, where the phone request sits in ``request`` (``method``, ``url``,
    ``auth`` as a word, ``username``, ``password``, ``success_status``, ``failure_body``, ``verify_tls``).
    """
    req = data.get("request")
    if isinstance(req, dict):
        flat = {k: v for k, v in data.items() if k != "request"}
        flat.update({k: req[k] for k in ("method", "url", "success_status", "failure_body") if k in req})
        flat["verify_tls"] = bool(req.get("verify_tls", False))
        flat["auth"] = {
            "type": req.get("auth") or "none",
            "username": req.get("username") or "",
            "password": req.get("password") or "",
        }
        data = flat
    command_id = str(data.get("command_id") or "")
    if not command_id:
        raise RelayRefused("The relay command has no command_id.")
    # The hub addresses the command to Link's own session; the desk phone is named in the data.
    raw_device = next(
        (data[k] for k in ("phone_device_id", "deskphone_id", "device_id") if data.get(k) is not None), None
    )
    if raw_device is None or not str(raw_device).isdigit():
        raise RelayRefused("The relay command does not name the desk phone (device_id).")
    device_id = int(raw_device)
    phone = phones.get(device_id)
    if phone is None or phone.kind != "deskphone":
        raise RelayRefused(f"Device {device_id} is not one of your desk phones.")
    method = str(data.get("method") or "GET").upper()
    if method not in ALLOWED_METHODS:
        raise RelayRefused(f"Link does not relay {method} requests.")
    url = str(data.get("url") or "")
    ip = _ip_of(url)
    claimed = [data.get(k) for k in ("ip", "phone_ip", "host", "address") if data.get(k)]
    if phone.address:
        claimed.append(phone.address)
    for c in claimed:
        try:
            if ipaddress.ip_address(str(c).strip("[]")) != ip:
                raise RelayRefused(f"The URL's host {ip} is not the address of that desk phone ({c}).")
        except ValueError:
            raise RelayRefused(f"The desk phone address {c!r} is not an IP address.") from None
    try:
        timeout = float(data.get("timeout") or DEFAULT_TIMEOUT)
    except (TypeError, ValueError):
        timeout = DEFAULT_TIMEOUT
    timeout = max(0.2, min(timeout, MAX_TIMEOUT))
    body = data.get("body")
    auth_spec = data.get("auth") if isinstance(data.get("auth"), dict) else {}
    assert isinstance(auth_spec, dict)
    raw_success = data.get("success_status") or ()
    try:
        success = tuple(int(x) for x in raw_success)
    except (TypeError, ValueError):
        raise RelayRefused("The relay command's success_status is not a list of numbers.") from None
    return RelayRequest(
        command_id=command_id,
        device_id=device_id,
        method=method,
        url=url,
        auth=_auth(data.get("auth")),
        timeout=timeout,
        body=str(body) if body is not None else None,
        content_type=str(data["content_type"]) if data.get("content_type") else None,
        username=str(auth_spec.get("username") or ""),
        password=str(auth_spec.get("password") or ""),
        success_status=success,
        failure_body=str(data["failure_body"]) if data.get("failure_body") else None,
        verify_tls=bool(data.get("verify_tls", False)),
    )


def _auth_for_challenge(challenge: str, req: RelayRequest) -> httpx.Auth | None:
    scheme = challenge.strip().split(" ", 1)[0].lower()
    if scheme == "digest":
        return httpx.DigestAuth(req.username, req.password)
    if scheme == "basic":
        return httpx.BasicAuth(req.username, req.password)
    return None


PhonesProvider = Callable[[bool], Awaitable[dict[int, Device]]]


class LanRelay:
    """Performs validated relay commands; ``phones(refresh)`` gives the user's devices by id."""

    def __init__(self, phones: PhonesProvider) -> None:
        self._phones = phones
        self.log: list[dict[str, Any]] = []

    async def perform(self, data: dict[str, Any]) -> dict[str, Any]:
        command_id = str(data.get("command_id") or "")
        started = time.monotonic()
        try:
            phones = await self._phones(False)
            dev = next(
                (data[k] for k in ("phone_device_id", "deskphone_id", "device_id") if data.get(k) is not None),
                None,
            )
            if str(dev).isdigit() and int(str(dev)) not in phones:
                # A phone assigned since Link last looked: refresh once before refusing.
                phones = await self._phones(True)
            req = validate(data, phones)
        except RelayRefused as exc:
            result = {"command_id": command_id, "ok": False, "status": None, "reason": exc.message}
            self._remember(result, data, started)
            return result
        result = await self._send(req)
        self._remember(result, data, started)
        return result

    async def _send(self, req: RelayRequest) -> dict[str, Any]:
        headers = {"Content-Type": req.content_type} if req.content_type else {}
        try:
            async with httpx.AsyncClient(
                timeout=httpx.Timeout(req.timeout, connect=min(req.timeout, 2.0)),
                follow_redirects=False,
                trust_env=False,
                # Desk phones serve self-signed certificates; the host is already pinned to the phone's
                # private IP given by the server, so the certificate is only checked when asked.
                verify=req.verify_tls,
            ) as http:
                resp = await http.request(req.method, req.url, auth=req.auth, content=req.body, headers=headers)
                if resp.status_code == 401 and req.username:
                    # Firmware may ask for another scheme than the catalog says: answer what it asks.
                    retry = _auth_for_challenge(resp.headers.get("www-authenticate", ""), req)
                    if retry is not None and type(retry) is not type(req.auth):
                        resp = await http.request(req.method, req.url, auth=retry, content=req.body, headers=headers)
        except httpx.TimeoutException:
            return self._result(req, False, None, f"The desk phone did not answer within {req.timeout:g} s.")
        except httpx.HTTPError as exc:
            return self._result(
                req, False, None, f"Cannot reach the desk phone from this computer: {exc or type(exc).__name__}."
            )
        except Exception as exc:  # malformed auth challenges raise outside httpx.HTTPError
            return self._result(req, False, None, f"Unexpected answer from the desk phone: {exc}.")
        status = resp.status_code
        ok = status in req.success_status if req.success_status else 200 <= status < 300
        reason = resp.reason_phrase or f"HTTP {status}"
        if ok and req.failure_body and req.failure_body in resp.text:
            ok, reason = False, "The desk phone answered that it refused the request."
        elif status == 401:
            reason = "The desk phone refused the web credentials."
        return self._result(req, ok, status, reason)

    @staticmethod
    def _result(req: RelayRequest, ok: bool, status: int | None, reason: str) -> dict[str, Any]:
        return {"command_id": req.command_id, "ok": ok, "status": status, "reason": reason}

    def _remember(self, result: dict[str, Any], data: dict[str, Any], started: float) -> None:
        # Keep a short, secret-free trail for the Test connection window and bug reports.
        self.log.append(
            {
                **result,
                "device_id": data.get("device_id"),
                "method": data.get("method"),
                "ms": round((time.monotonic() - started) * 1000),
            }
        )
        del self.log[:-20]
