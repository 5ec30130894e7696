"""Trunks to a SIP provider: their configuration, outbound registration and call routing by number.

Owns :class:`TrunkConfig` (what the admin API stores), :class:`TrunkRegistrations` (sans-IO outbound
REGISTER toward each provider that wants it, with digest auth on 401/407, refresh before expiry and retry
with back-off after a failure; it sends through the endpoint and is fed the responses), and the routing
rules: which trunk carries a dialed outside number, and which trunk an inbound INVITE came from and to
which extension its DID leads.

DIDs: each entry of ``TrunkConfig.dids`` is ``"<number>"`` or ``"<number>=<extension>"``. A bare number
routes to the user whose extension is the number itself, unless the switch was given a ``route_did``
callable (the lead's mapping of numbers to users), which wins.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from callto.sip.auth import DigestClient
from callto.sip.endpoint import SipEndpoint, Source
from callto.sip.message import Headers, Request, Response, new_tag

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrunkConfig:
    id: str
    name: str
    host: str
    port: int = 5060
    transport: str = "udp"  # "udp" | "tcp"
    username: str = ""
    password: str = ""
    register: bool = False
    caller_id: str = ""
    dids: tuple[str, ...] = ()
    register_expires: int = 600

    def did_map(self) -> dict[str, str | None]:
        """DID number -> extension it names (None: decided by ``route_did`` or the number itself)."""
        out: dict[str, str | None] = {}
        for entry in self.dids:
            number, eq, ext = entry.partition("=")
            out[_digits(number)] = ext.strip() if eq and ext.strip() else None
        return out


def _digits(number: str) -> str:
    return "".join(ch for ch in number.strip() if ch.isdigit() or ch == "+")


def same_number(a: str, b: str) -> bool:
    """Two renderings of one number (``+39...`` vs ``0039...`` vs ``39...``) compare equal."""
    da, db = _digits(a).lstrip("+"), _digits(b).lstrip("+")
    if da.startswith("00"):
        da = da[2:]
    if db.startswith("00"):
        db = db[2:]
    return bool(da) and da == db


def ip_literal(host: str) -> str | None:
    """The host as a normalized IP address when it is one (``[::1]`` -> ``::1``), else None (a name)."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def literal_or_name(host: str) -> str:
    """What a trunk's address is before its name is resolved: an IP literal normalized, a name as is.
    Never asks a resolver, so it is safe on the event loop (the switch resolves names in a worker)."""
    return ip_literal(host) or host.strip("[]")


async def resolve_host(host: str) -> str:
    """An IP literal as is; a name through the system resolver, which asyncio runs in a worker thread so a
    slow or dead DNS server never stalls the event loop (and the calls on it)."""
    literal = ip_literal(host)
    if literal is not None:
        return literal
    text = host.strip("[]")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(text, None, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError):  # UnicodeError: a label too long for IDNA; unresolvable all the same
        return text
    return str(infos[0][4][0]) if infos else text


@dataclass
class _RegState:
    trunk: TrunkConfig
    dest: Source
    call_id: str
    from_tag: str
    cseq: int = 0
    tx_id: int | None = None
    registered: bool = False
    expires_at: float | None = None
    next_at: float | None = None
    last_error: str | None = None
    auth_tries: int = 0
    failures: int = 0
    auth: DigestClient | None = None
    stopping: bool = False


class TrunkRegistrations:
    """Outbound REGISTER for every trunk with ``register=True``; feed it responses, timeouts and time."""

    RETRY_MIN = 5.0
    RETRY_MAX = 300.0

    def __init__(self, endpoint: SipEndpoint, contact_host: str, contact_port: int) -> None:
        self.endpoint = endpoint
        self.contact_host = contact_host
        self.contact_port = contact_port
        self._states: dict[str, _RegState] = {}
        self._by_tx: dict[int, str] = {}

    def configure(self, trunks: list[TrunkConfig], dests: dict[str, Source], now: float) -> None:
        """Take a new trunk list: new or changed trunks register now, removed ones unregister."""
        wanted = {t.id: t for t in trunks if t.register}
        for trunk_id, state in list(self._states.items()):
            new = wanted.get(trunk_id)
            if new is None or new != state.trunk:
                if state.registered:
                    state.stopping = True
                    self._send(state, now, expires=0)
                del self._states[trunk_id]
        for trunk_id, trunk in wanted.items():
            if trunk_id in self._states:
                continue
            self._states[trunk_id] = _RegState(
                trunk=trunk,
                dest=dests[trunk_id],
                call_id=f"{secrets.token_hex(8)}@callto",
                from_tag=new_tag(),
                next_at=now,
                auth=DigestClient(trunk.username, trunk.password),
            )

    def status(self, trunk_id: str) -> tuple[bool, str | None]:
        state = self._states.get(trunk_id)
        if state is None:
            return False, None
        return state.registered, state.last_error

    # --- time ------------------------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        times = [s.next_at for s in self._states.values() if s.next_at is not None and s.tx_id is None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        for state in list(self._states.values()):
            if state.tx_id is None and state.next_at is not None and state.next_at <= now:
                state.next_at = None
                state.auth_tries = 0
                self._send(state, now)

    # --- responses -------------------------------------------------------------------------------------
    def owns(self, tx_id: int | None) -> bool:
        return tx_id is not None and tx_id in self._by_tx

    def handle_response(self, tx_id: int, response: Response, now: float) -> None:
        if response.status < 200:
            return
        trunk_id = self._by_tx.pop(tx_id, None)
        state = self._states.get(trunk_id) if trunk_id is not None else None
        if state is None or state.tx_id != tx_id:
            return
        state.tx_id = None
        if response.status in (401, 407) and state.auth is not None and state.auth_tries < 2:
            header = "www-authenticate" if response.status == 401 else "proxy-authenticate"
            state.auth_tries += 1
            self._send(state, now, challenge=(response.status, response.headers.get_all(header)))
            return
        if 200 <= response.status < 300:
            expires = _granted_expires(response, state.trunk.register_expires)
            state.registered = True
            state.last_error = None
            state.failures = 0
            state.expires_at = now + expires
            # refresh well before expiry (and never hammer a provider granting tiny intervals)
            state.next_at = now + max(expires * 0.8 if expires > 60 else expires - 5, 5)
            return
        state.registered = False
        state.last_error = f"{response.status} {response.reason}"
        if response.status == 423:
            min_exp = response.headers.get("min-expires")
            if min_exp and min_exp.strip().isdigit():
                state.trunk = _with_expires(state.trunk, int(min_exp.strip()))
                state.next_at = now
                return
        self._retry_later(state, now)

    def handle_timeout(self, tx_id: int, now: float) -> None:
        trunk_id = self._by_tx.pop(tx_id, None)
        state = self._states.get(trunk_id) if trunk_id is not None else None
        if state is None or state.tx_id != tx_id:
            return
        state.tx_id = None
        state.registered = False
        state.last_error = "no answer from the provider"
        self._retry_later(state, now)

    def _retry_later(self, state: _RegState, now: float) -> None:
        state.failures += 1
        delay = min(self.RETRY_MIN * 2 ** (state.failures - 1), self.RETRY_MAX)
        state.next_at = now + delay
        log.warning("trunk %s registration failed (%s); retrying in %.0fs", state.trunk.name, state.last_error, delay)

    def _send(
        self,
        state: _RegState,
        now: float,
        *,
        expires: int | None = None,
        challenge: tuple[int, list[str]] | None = None,
    ) -> None:
        trunk = state.trunk
        state.cseq += 1
        host = _host_text(trunk.host)
        port = "" if trunk.port == 5060 else f":{trunk.port}"
        ruri = f"sip:{host}{port}"
        aor = f"sip:{trunk.username}@{host}{port}"
        headers = Headers()
        headers.add("From", f"<{aor}>;tag={state.from_tag}")
        headers.add("To", f"<{aor}>")
        headers.add("Call-ID", state.call_id)
        headers.add("CSeq", f"{state.cseq} REGISTER")
        transport = "" if trunk.transport == "udp" else f";transport={trunk.transport}"
        contact_host = _host_text(self.contact_host)
        headers.add("Contact", f"<sip:{trunk.username}@{contact_host}:{self.contact_port}{transport}>")
        headers.add("Expires", str(trunk.register_expires if expires is None else expires))
        if challenge is not None and state.auth is not None:
            status, values = challenge
            value = state.auth.authorization(values, "REGISTER", ruri)
            if value is not None:
                headers.add("Authorization" if status == 401 else "Proxy-Authorization", value)
        request = Request("REGISTER", ruri, headers)
        try:
            tx_id = self.endpoint.send_request(request, state.dest, now)
        except Exception as exc:  # an unusable destination must not stop the other trunks
            state.last_error = f"cannot send REGISTER: {exc}"
            self._retry_later(state, now)
            return
        if state.stopping:
            return
        state.tx_id = tx_id
        self._by_tx[tx_id] = trunk.id


def _with_expires(trunk: TrunkConfig, expires: int) -> TrunkConfig:
    from dataclasses import replace

    return replace(trunk, register_expires=expires)


def _granted_expires(response: Response, asked: int) -> int:
    try:
        for contact in response.contacts:
            if contact.expires is not None:
                return int(contact.expires)
    except Exception:
        pass
    if response.expires is not None:
        return int(response.expires)
    return asked


def _host_text(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass
class TrunkRouter:
    """Picks trunks for calls: outbound by configuration order, inbound by source host and DID."""

    trunks: list[TrunkConfig] = field(default_factory=list)
    addresses: dict[str, str] = field(default_factory=dict)  # trunk id -> IP (or the name, until resolved)
    resolve: Callable[[str], str] = literal_or_name

    def set(self, trunks: list[TrunkConfig], resolved: dict[str, str] | None = None) -> None:
        """Take a trunk list; ``resolved`` (trunk id -> IP) gives addresses looked up off the loop."""
        self.trunks = list(trunks)
        known = resolved or {}
        self.addresses = {t.id: known.get(t.id) or self.resolve(t.host) for t in trunks}

    def unresolved(self) -> list[TrunkConfig]:
        """The trunks whose address is still a name (nothing may be sent to them yet)."""
        return [t for t in self.trunks if ip_literal(self.addresses.get(t.id, t.host)) is None]

    def dest(self, trunk: TrunkConfig) -> Source:
        return Source(trunk.transport, (self.addresses.get(trunk.id, trunk.host), trunk.port))

    def outbound(self) -> TrunkConfig | None:
        return self.trunks[0] if self.trunks else None

    def inbound(self, source_host: str, number: str) -> tuple[TrunkConfig, str, str | None] | None:
        """(trunk, the DID as configured, extension or None) when ``source_host`` is a trunk's and
        ``number`` (in any of its renderings: ``+39...``, ``0039...``) is one of that trunk's DIDs."""
        for trunk in self.trunks:
            if self.addresses.get(trunk.id) != source_host:
                continue
            for did, ext in trunk.did_map().items():
                if same_number(did, number):
                    return trunk, did, ext
        return None

    def from_trunk_host(self, source_host: str) -> TrunkConfig | None:
        return next((t for t in self.trunks if self.addresses.get(t.id) == source_host), None)
