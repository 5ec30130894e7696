"""The SIP switch's ports to the rest of callto: how it finds SIP accounts and where it keeps bindings.

Owns the :class:`Credentials` and :class:`BindingStore` protocols (the lead backs them with the directory
and the database), the :class:`SipAccount` and :class:`Binding` records that cross them, and in-memory
implementations used by tests and by a server started without a database.
Both protocols are synchronous and are called from the event loop: keep them fast (an indexed query or a
cache), they sit on the REGISTER path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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
