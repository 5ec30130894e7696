"""Sans-IO registrar (RFC 3261 10.3): digest-authenticated REGISTER, bindings kept exactly as sent.

Owns the location service of the switch: which contacts each device has, until when, and the events
:class:`DeviceOnline` / :class:`DeviceOffline` when a device's first binding appears or its last one goes
(un-REGISTER or expiry). Accounts come from a :class:`~callto.sip.ports.Credentials`, bindings are written
through a :class:`~callto.sip.ports.BindingStore` so they survive a restart. The registrar never sends
anything: :meth:`Registrar.handle_register` returns the reply (status, reason, headers) for the caller to
send through its server transaction.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace

from callto.sip.auth import MD5_ONLY_USER_AGENTS, DigestServer, Verdict
from callto.sip.endpoint import Source
from callto.sip.errors import SipMessageError
from callto.sip.grammar import SipURI, parse_contact, quote
from callto.sip.message import Request
from callto.sip.ports import Binding, BindingStore, Credentials, SipAccount


@dataclass(frozen=True, slots=True)
class DeviceOnline:
    device_id: str
    user_id: str
    extension: str
    contact: str
    source: str  # "udp:192.0.2.1:5060"
    user_agent: str | None
    taken_in: bool = False  # learnt from another node's registration (that node announces it), not a REGISTER here


@dataclass(frozen=True, slots=True)
class DeviceOffline:
    device_id: str
    user_id: str
    extension: str
    reason: str  # "unregistered", "expired" or "removed"
    taken_in: bool = False  # another node's registration left the store (that node announces it)


RegistrarEvent = DeviceOnline | DeviceOffline


@dataclass(frozen=True, slots=True)
class RegistrarReply:
    status: int
    reason: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    events: list[RegistrarEvent] = field(default_factory=list)
    account: SipAccount | None = None
    # a wrong password or unknown user: the digest username tried ("" when none), for the guessing throttle
    failed_username: str | None = None


@dataclass(frozen=True)
class RegistrarConfig:
    realm: str
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    max_bindings_per_device: int = 10
    nonce_lifetime: float = 300.0
    # The key nonces are signed with; the same on every node (from the database), so a challenge one node
    # issued can be answered to another. None: a random key of this process.
    nonce_secret: bytes | None = None
    algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    md5_only_user_agents: tuple[str, ...] = MD5_ONLY_USER_AGENTS


class Registrar:
    def __init__(
        self,
        config: RegistrarConfig,
        credentials: Credentials,
        store: BindingStore,
        *,
        digest: DigestServer | None = None,
    ) -> None:
        self.config = config
        self.credentials = credentials
        self.store = store
        self.digest = digest or DigestServer(
            config.realm,
            config.nonce_secret,
            lifetime=config.nonce_lifetime,
            algorithms=config.algorithms,
            md5_only_user_agents=config.md5_only_user_agents,
        )
        self._by_device: dict[str, dict[str, Binding]] = {}
        # Expiry queue: (deadline, device, binding id). A binding has at most one live entry, recorded in
        # _scheduled; a refresh that only moves the expiry later pushes nothing (the entry, when due, finds
        # the later expiry and goes back in the queue), so the queue grows with the bindings, not with the
        # REGISTERs (a phone refreshing every minute, or a benchmark, would otherwise pile entries up).
        self._heap: list[tuple[float, str, str]] = []
        self._scheduled: dict[tuple[str, str], float] = {}
        # Indexes for routing (every INVITE looks a user or an extension up): key -> {device id: how many of
        # that device's bindings carry the key}. Kept by _put/_drop, the only ways bindings enter or leave
        # _by_device, so a lookup costs the user's own devices, not a scan of every binding.
        self._devices_by_user: dict[str, dict[str, int]] = {}
        self._devices_by_extension: dict[str, dict[str, int]] = {}
        # Bindings other nodes accepted, taken in by merge_stored: key -> registered_at as taken in.
        self._remote: dict[tuple[str, str], float] = {}

    # --- state ---------------------------------------------------------------------------------------
    def load(self, now: float) -> list[RegistrarEvent]:
        """Read the stored bindings (after a restart); expired ones are deleted, live devices reported."""
        events: list[RegistrarEvent] = []
        for binding in self.store.load_all():
            if binding.expires_at <= now:
                self.store.delete(binding.device_id, binding.binding_id)
                continue
            device = self._by_device.setdefault(binding.device_id, {})
            fresh = not device
            self._put(device, binding.binding_id, replace(binding, conn_id=None))
            self._schedule(binding.device_id, binding.binding_id, binding.expires_at)
            if fresh:
                events.append(_online(binding))
        return events

    def merge_stored(self, stored: list[Binding], now: float) -> list[RegistrarEvent]:
        """Take in the bindings other nodes of a cluster accepted, read from the shared store.

        A stored binding that is new here, or newer than ours (a later REGISTER, on another node), joins;
        a binding taken in earlier that has left the store (unregistered or expired elsewhere) goes. The
        caller leaves out the rows this node has not finished writing, so a binding this node just removed
        does not come back from a stale row. Stream connections belong to the node that holds them: a
        binding taken in has none (requests for it follow its Path, or go to its source address).
        """
        events: list[RegistrarEvent] = []
        seen: set[tuple[str, str]] = set()
        for binding in stored:
            if binding.expires_at <= now:
                continue
            seen.add((binding.device_id, binding.binding_id))
            self._take_in(binding, events)
        for key in [k for k in self._remote if k not in seen]:
            self._let_go(key, events)
        return events

    def merge_changes(self, changed: list[Binding], gone: list[tuple[str, str]], now: float) -> list[RegistrarEvent]:
        """Take in what another node just wrote (its bindings added or refreshed, and removed), pushed to
        this node as it happened: the same rules as :meth:`merge_stored`, for those keys only, so a phone
        registered on one node is reachable from the others at once rather than at the next full read.
        A removed key this node holds as its own (not taken in) stays: its own REGISTER decides."""
        events: list[RegistrarEvent] = []
        for binding in changed:
            if binding.expires_at > now:
                self._take_in(binding, events)
        for key in gone:
            if key in self._remote:
                self._let_go(key, events)
        return events

    def _take_in(self, binding: Binding, events: list[RegistrarEvent]) -> None:
        key = (binding.device_id, binding.binding_id)
        device = self._by_device.get(binding.device_id)
        current = device.get(binding.binding_id) if device else None
        if current is not None and (current.registered_at, current.cseq) >= (binding.registered_at, binding.cseq):
            return
        fresh = not device
        device = self._by_device.setdefault(binding.device_id, {})
        self._put(device, binding.binding_id, replace(binding, conn_id=None))
        self._remote[key] = binding.registered_at
        self._schedule(binding.device_id, binding.binding_id, binding.expires_at)
        if fresh:
            events.append(_online(binding, taken_in=True))

    def _let_go(self, key: tuple[str, str], events: list[RegistrarEvent]) -> None:
        taken_at = self._remote.pop(key)
        device = self._by_device.get(key[0])
        current = device.get(key[1]) if device else None
        if device is None or current is None or current.registered_at != taken_at:
            return  # gone already, or registered here since: this node's own now
        self._drop(device, key[1])
        if not device:
            del self._by_device[key[0]]
            events.append(DeviceOffline(key[0], current.user_id, current.extension, "unregistered", taken_in=True))

    def bindings(self, device_id: str) -> list[Binding]:
        return sorted(self._by_device.get(device_id, {}).values(), key=lambda b: -(b.q or 0.0))

    def bindings_for_extension(self, extension: str) -> list[Binding]:
        devices = self._devices_by_extension.get(extension)
        if not devices:
            return []
        by_device = self._by_device
        return [b for d in devices for b in by_device[d].values() if b.extension == extension]

    def bindings_for_user(self, user_id: str) -> list[Binding]:
        devices = self._devices_by_user.get(user_id)
        if not devices:
            return []
        by_device = self._by_device
        return [b for d in devices for b in by_device[d].values() if b.user_id == user_id]

    def _put(self, device: dict[str, Binding], binding_id: str, binding: Binding) -> None:
        """Add or replace a binding of ``device`` (``_by_device[binding.device_id]``), keeping the indexes."""
        old = device.get(binding_id)
        if old is not None:
            if old.user_id == binding.user_id and old.extension == binding.extension:
                device[binding_id] = binding  # a refresh: the indexes already count it
                return
            self._unindex(old)
        device[binding_id] = binding
        for index, key in ((self._devices_by_user, binding.user_id), (self._devices_by_extension, binding.extension)):
            counts = index.setdefault(key, {})
            counts[binding.device_id] = counts.get(binding.device_id, 0) + 1

    def _drop(self, device: dict[str, Binding], binding_id: str) -> Binding | None:
        """Remove a binding of ``device``, keeping the indexes; the caller deletes an emptied device."""
        old = device.pop(binding_id, None)
        if old is not None:
            self._unindex(old)
        return old

    def _unindex(self, binding: Binding) -> None:
        for index, key in ((self._devices_by_user, binding.user_id), (self._devices_by_extension, binding.extension)):
            counts = index[key]
            left = counts[binding.device_id] - 1
            if left:
                counts[binding.device_id] = left
            else:
                del counts[binding.device_id]
                if not counts:
                    del index[key]

    def remove_device(self, device_id: str) -> list[RegistrarEvent]:
        """Drop every binding of a device that no longer exists (deleted by an admin): offline at once."""
        device = self._by_device.pop(device_id, None)
        if not device:
            return []
        first = next(iter(device.values()))
        for binding_id, binding in device.items():
            self._unindex(binding)
            self._scheduled.pop((device_id, binding_id), None)  # its heap entry, when due, finds nothing
            self._remote.pop((device_id, binding_id), None)
            self.store.delete(device_id, binding_id)
        return [DeviceOffline(device_id, first.user_id, first.extension, "removed")]

    def online_devices(self) -> set[str]:
        return {d for d, b in self._by_device.items() if b}

    def devices_registered_here(self) -> set[str]:
        """The online devices with a binding this node accepted itself (not only taken in from another
        node): in a cluster, the phones whose REGISTERs reach this node."""
        remote = self._remote
        return {d for d, b in self._by_device.items() if any((d, key) not in remote for key in b)}

    def next_expiry(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def expire(self, now: float) -> list[RegistrarEvent]:
        events: list[RegistrarEvent] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, device_id, binding_id = heapq.heappop(heap)
            key = (device_id, binding_id)
            if self._scheduled.get(key) != when:
                continue  # superseded by an earlier deadline
            del self._scheduled[key]
            device = self._by_device.get(device_id)
            binding = device.get(binding_id) if device else None
            if device is None or binding is None:
                continue  # removed since
            if binding.expires_at > now:
                self._schedule(device_id, binding_id, binding.expires_at)  # refreshed since
                continue
            self._drop(device, binding_id)
            self.store.delete(device_id, binding_id)
            if not device:
                del self._by_device[device_id]
                events.append(DeviceOffline(device_id, binding.user_id, binding.extension, "expired"))
        return events

    def _schedule(self, device_id: str, binding_id: str, expires_at: float) -> None:
        key = (device_id, binding_id)
        due = self._scheduled.get(key)
        if due is not None and due <= expires_at:
            return  # the entry in the queue comes first and reschedules itself then
        self._scheduled[key] = expires_at
        heapq.heappush(self._heap, (expires_at, device_id, binding_id))

    # --- REGISTER ------------------------------------------------------------------------------------
    def handle_register(self, request: Request, source: Source, now: float) -> RegistrarReply:
        try:
            return self._handle(request, source, now)
        except SipMessageError as exc:
            return RegistrarReply(exc.sip_status or 400, f"Bad Request ({exc.reason})")

    def _handle(self, request: Request, source: Source, now: float) -> RegistrarReply:
        to_uri = request.to.uri
        if not isinstance(to_uri, SipURI):
            return RegistrarReply(400, "Bad Request (To is not a sip: or sips: address-of-record)")
        contacts = request.contacts  # raises SipMessageError on a malformed Contact
        auth = self._authenticate(request, now)
        if isinstance(auth, RegistrarReply):
            return auth
        account = auth
        if to_uri.user not in (account.username, account.extension):
            return RegistrarReply(403, "Forbidden (credentials do not own this address-of-record)")
        aor = f"sip:{to_uri.user}@{self.config.realm}"
        device = self._by_device.get(account.device_id, {})
        was_online = bool(device)
        call_id = request.call_id
        cseq = request.cseq.seq
        header_expires = request.expires
        changes: list[tuple[str, Binding | None]] = []  # (binding_id, new binding or None to delete)

        if contacts and contacts[0].star:
            if header_expires != 0:
                return RegistrarReply(400, "Bad Request (Contact: * needs Expires: 0)")
            for binding in device.values():
                if binding.call_id == call_id and cseq <= binding.cseq:
                    return RegistrarReply(400, "Bad Request (CSeq out of order)")
                changes.append((binding.binding_id, None))
        else:
            user_agent = request.headers.get("user-agent")
            path = tuple(request.headers.get_list("path"))
            for contact in contacts:
                assert contact.addr is not None
                if not isinstance(contact.addr.uri, SipURI):
                    return RegistrarReply(400, "Bad Request (Contact is not a sip: or sips: URI)")
                expires = contact.expires if contact.expires is not None else header_expires
                if expires is None:
                    expires = self.config.default_expires
                if 0 < expires < self.config.min_expires:
                    return RegistrarReply(423, "Interval Too Brief", [("Min-Expires", str(self.config.min_expires))])
                expires = min(expires, self.config.max_expires)
                # Binding.binding_id, worked out before building the binding: a refresh keeps registered_at
                if contact.instance:
                    binding_id = f"{contact.instance}|{contact.reg_id if contact.reg_id is not None else ''}"
                else:
                    binding_id = contact.addr.uri_text
                old = device.get(binding_id)
                if old is not None and old.call_id == call_id and cseq <= old.cseq:
                    return RegistrarReply(400, "Bad Request (CSeq out of order)")
                binding = Binding(
                    device_id=account.device_id,
                    user_id=account.user_id,
                    extension=account.extension,
                    aor=aor,
                    contact=contact.addr.uri_text,
                    contact_header=contact.raw,
                    expires_at=now + expires,
                    call_id=call_id,
                    cseq=cseq,
                    source_transport=source.transport,
                    source_host=source.addr[0],
                    source_port=source.addr[1],
                    registered_at=old.registered_at if old is not None and expires > 0 else now,
                    q=contact.q,
                    instance=contact.instance,
                    reg_id=contact.reg_id,
                    user_agent=user_agent,
                    path=path,
                    conn_id=source.conn_id,
                )
                changes.append((binding_id, binding if expires > 0 else None))

        # apply: nothing above this line has changed any state
        device = self._by_device.setdefault(account.device_id, {})
        for binding_id, new in changes:
            if new is None:
                if self._drop(device, binding_id) is not None:
                    self.store.delete(account.device_id, binding_id)
            else:
                self._put(device, binding_id, new)
                self.store.upsert(new)
                self._schedule(new.device_id, binding_id, new.expires_at)
        while len(device) > self.config.max_bindings_per_device:
            oldest = min(device.values(), key=lambda b: b.expires_at)
            self._drop(device, oldest.binding_id)
            self.store.delete(account.device_id, oldest.binding_id)
        events: list[RegistrarEvent] = []
        if device and not was_online:
            first = next(iter(device.values()))
            events.append(_online(first))
        if not device:
            del self._by_device[account.device_id]
            if was_online:
                events.append(DeviceOffline(account.device_id, account.user_id, account.extension, "unregistered"))
        headers = [("Contact", _echoed_contact(b, now)) for b in device.values()]
        if "path" in [opt.lower() for opt in request.headers.get_list("supported")]:
            # RFC 3327 5.3: a registrar that stored a Path echoes it in the 200
            headers.extend(("Path", p) for p in request.headers.get_list("path"))
        return RegistrarReply(200, "OK", headers, events, account)

    def _authenticate(self, request: Request, now: float) -> SipAccount | RegistrarReply:
        values = request.headers.get_all("authorization")
        value: str | None = None
        if len(values) == 1:
            value = values[0]
        elif values:
            # with several credentials (several realms) use ours; RFC 3261 22.4
            marker = f'realm="{self.config.realm}"'
            value = next((v for v in values if marker in v), values[0])
        account: SipAccount | None = None

        def lookup(username: str) -> str | None:
            nonlocal account
            account = self.credentials.lookup(username)
            return account.password if account is not None else None

        result = self.digest.verify(value, request.method, lookup, now=now)
        if result.verdict is Verdict.OK and account is not None:
            return account
        if result.verdict is Verdict.BAD_REQUEST:
            return RegistrarReply(400, f"Bad Request ({result.reason})")
        if result.verdict is Verdict.FORBIDDEN:
            # one answer for unknown user and wrong password, so the reason cannot enumerate accounts
            if result.reason in ("unknown user", "wrong password"):
                return RegistrarReply(403, "Forbidden (bad credentials)", failed_username=result.username or "")
            return RegistrarReply(403, f"Forbidden ({result.reason})")
        stale = result.verdict is Verdict.STALE
        user_agent = request.headers.get("user-agent")
        challenges = [("WWW-Authenticate", c) for c in self.digest.challenges(now, stale=stale, user_agent=user_agent)]
        return RegistrarReply(401, "Unauthorized", challenges)


def _echoed_contact(binding: Binding, now: float) -> str:
    """A binding's Contact for the 200 OK: as the device sent it (its parameters, ``+sip.instance`` and
    ``reg-id`` among them: RFC 5626 clients look for their own flow there), ``expires`` set to what is left."""
    expires = str(max(0, int(binding.expires_at - now)))
    try:
        contact = parse_contact(binding.contact_header)
    except SipMessageError:
        contact = None
    if contact is None or contact.addr is None:  # a stored binding without its element: the URI alone
        return f"<{binding.contact}>;expires={expires}"
    addr = contact.addr
    # str(addr.with_param("expires", expires)), without the intermediate NameAddr
    head = "" if addr.display is None else quote(addr.display) + " "
    kept = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in addr.params if k.lower() != "expires")
    return f"{head}<{addr.uri_text}>{kept};expires={expires}"


def _online(binding: Binding, taken_in: bool = False) -> DeviceOnline:
    return DeviceOnline(
        binding.device_id,
        binding.user_id,
        binding.extension,
        binding.contact,
        f"{binding.source_transport}:{binding.source_host}:{binding.source_port}",
        binding.user_agent,
        taken_in,
    )
