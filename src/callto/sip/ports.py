"""The SIP switch's ports to the rest of callto: how it finds SIP accounts and where it keeps bindings.

Owns the :class:`Credentials`, :class:`BindingStore` and :class:`ActiveCallStore` protocols (the lead backs
them with the directory and the database), the :class:`SipAccount`, :class:`Binding` and
:class:`ActiveCall` records that cross them, and in-memory implementations used by tests and by a server
started without a database. It also owns what features hand the switch and get back: a click's
:class:`OriginateRequest` (with :class:`NumberKind`, where a number goes) and :class:`OriginateResult`, and
a provisioning re-sync's :class:`NotifyResult`. Feature packages import these from here (the dialer's
``Number`` is a :class:`CalledNumber`); this package imports nothing from them.
Both protocols are synchronous and are called from the event loop: keep them fast (an indexed query or a
cache), they sit on the REGISTER path.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol


class NumberKind(enum.StrEnum):
    """Where a dialled number goes: an extension rings the user's devices, the others go to the trunk."""

    EXTENSION = "extension"
    NATIONAL = "national"
    INTERNATIONAL = "international"
    EMERGENCY = "emergency"


class CalledNumber(Protocol):
    """A classified number as the switch reads it (``callto.dialer.numbers.Number`` is one)."""

    @property
    def kind(self) -> NumberKind: ...

    @property
    def dialed(self) -> str:
        """What the trunk is sent."""
        ...

    @property
    def display(self) -> str: ...

    @property
    def extension(self) -> str | None: ...


@dataclass(frozen=True)
class OriginateRequest:
    """A click: ring the user's device (or, for a callback, their mobile through the trunk), then call
    ``destination`` and bridge the two."""

    call_id: str
    user_id: int
    # The device to ring first: its SIP username (the switch knows where it registered), or None with
    # ``first_leg_number`` for a callback to the user's mobile through the trunk.
    device_sip_username: str | None
    destination: CalledNumber
    auto_answer: bool = False
    first_leg_number: CalledNumber | None = None
    caller_display: str = ""


@dataclass(frozen=True)
class OriginateResult:
    ok: bool
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NotifyResult:
    """A check-sync NOTIFY's outcome: ``sent`` (the phone answered 2xx), ``not-registered``, ``rejected``,
    ``timeout``, ..."""

    sent: bool
    outcome: str
    message: str = ""


@dataclass(frozen=True, slots=True)
class SipAccount:
    """One device's SIP credentials and who it belongs to."""

    username: str
    password: str
    device_id: str
    user_id: str
    extension: str


class Credentials(Protocol):
    def lookup(self, username: str) -> SipAccount | None:
        """The account whose SIP username is ``username``, or None."""
        ...


@dataclass(frozen=True, slots=True)
class Binding:
    """A registered contact, stored exactly as the device sent it (RFC 3261 10.3, RFC 5626 instance/reg-id).

    ``contact`` is the Contact URI text, byte for byte; ``contact_header`` the whole Contact element
    (display name and parameters). ``expires_at`` and ``registered_at`` are wall-clock seconds (Unix time),
    so a binding loaded after a restart keeps its expiry. ``source_*`` is where the REGISTER came from:
    route requests there (NAT) with the stored contact as Request-URI.
    """

    device_id: str
    user_id: str
    extension: str
    aor: str
    contact: str
    contact_header: str
    expires_at: float
    call_id: str
    cseq: int
    source_transport: str
    source_host: str
    source_port: int
    registered_at: float
    q: float | None = None
    instance: str | None = None
    reg_id: int | None = None
    user_agent: str | None = None
    path: tuple[str, ...] = ()
    conn_id: int | None = None  # the stream connection it registered over; meaningless after a restart

    @property
    def binding_id(self) -> str:
        """Identity of the binding inside its device: instance+reg-id when given (RFC 5626), else the URI."""
        if self.instance:
            return f"{self.instance}|{self.reg_id if self.reg_id is not None else ''}"
        return self.contact


class BindingStore(Protocol):
    def load_all(self) -> list[Binding]:
        """Every stored binding (expired ones included: the registrar drops them)."""
        ...

    def upsert(self, binding: Binding) -> None:
        """Insert or replace the binding with the same (device_id, binding_id)."""
        ...

    def delete(self, device_id: str, binding_id: str) -> None: ...


class InMemoryBindingStore:
    """A BindingStore that forgets everything on restart (tests, no database)."""

    def __init__(self) -> None:
        self.bindings: dict[tuple[str, str], Binding] = {}

    def load_all(self) -> list[Binding]:
        return list(self.bindings.values())

    def upsert(self, binding: Binding) -> None:
        self.bindings[(binding.device_id, binding.binding_id)] = binding

    def delete(self, device_id: str, binding_id: str) -> None:
        self.bindings.pop((device_id, binding_id), None)


class StaticCredentials:
    """Credentials from a fixed list of accounts (tests, benchmarks)."""

    def __init__(self, accounts: list[SipAccount] | None = None) -> None:
        self.accounts = {a.username: a for a in accounts or []}

    def add(self, account: SipAccount) -> None:
        self.accounts[account.username] = account

    def lookup(self, username: str) -> SipAccount | None:
        return self.accounts.get(username)


@dataclass(frozen=True, slots=True)
class ActiveLeg:
    """What it takes to end one confirmed leg of an answered call from a process that never carried it:
    the dialog (RFC 3261 12) as this side sees it, and where its requests go."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    remote_target: str
    local_contact: str
    route_set: tuple[str, ...]
    local_seq: int
    transport: str
    host: str
    port: int
    device_id: str | None = None


@dataclass(frozen=True, slots=True)
class ActiveCall:
    """An answered call, kept outside the process so a restart (or a survivor) can end it and record it."""

    call_id: str
    node: str
    direction: str
    from_number: str
    to_number: str
    started_at: float
    answered_at: float
    caller_user_id: str | None = None
    caller_device_id: str | None = None
    callee_user_id: str | None = None
    answered_device_id: str | None = None
    trunk_id: str | None = None
    click_id: str = ""
    devices_rung: tuple[str, ...] = ()
    legs: tuple[ActiveLeg, ...] = field(default_factory=tuple)


class ActiveCallStore(Protocol):
    """Where the switch keeps its answered calls. ``save`` and ``drop`` run on the event loop (queue the
    write, never block); ``load_node`` runs once at start."""

    def save(self, call: ActiveCall) -> None: ...

    def drop(self, call_id: str) -> None: ...

    def load_node(self, node: str) -> list[ActiveCall]:
        """The calls this node had answered and not ended when it last stopped."""
        ...


class InMemoryActiveCalls:
    """An ActiveCallStore in memory (tests; a switch without a database has nothing to recover)."""

    def __init__(self) -> None:
        self.calls: dict[str, ActiveCall] = {}

    def save(self, call: ActiveCall) -> None:
        self.calls[call.call_id] = call

    def drop(self, call_id: str) -> None:
        self.calls.pop(call_id, None)

    def load_node(self, node: str) -> list[ActiveCall]:
        return [c for c in self.calls.values() if c.node == node]


class NodeRegistry(Protocol):
    """The nodes of a cluster beside one database: each one beats, survivors take a dead one's calls.

    Every method may block briefly (one indexed statement): call them off the event loop."""

    def beat(self) -> None:
        """Say this node is alive (a counter goes up; no clocks are compared between nodes)."""
        ...

    def beats(self) -> dict[str, int]:
        """Every other node and its counter."""
        ...

    def claim_calls(self, dead: str) -> list[ActiveCall]:
        """Take over the dead node's answered calls, atomically: a second survivor gets none of them."""
        ...

    def forget(self, dead: str, beat: int) -> None:
        """Remove a dead node that has not beaten since ``beat``."""
        ...
