"""Provisioning's behaviour: phones by MAC, their assignment to users, tokens, serving and the fetch log.

Plain arguments in, plain views out; nothing here knows about HTTP. The phone's SIP account is the
user's ``deskphone`` device in the directory (created on assignment, deleted on unassignment, so its
credentials stop working); vendor knowledge comes from :mod:`callto.phones`. Click-to-call reaches a
desk phone through :meth:`ProvisioningService.desk_phone` (the dialer's ``DeskPhones`` port).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callto.config import Settings
from callto.dialer.ports import DeskPhone
from callto.directory.errors import DeviceNotFound
from callto.directory.generation import GenerationCache, Token, bump
from callto.directory.online import DeviceStatus
from callto.directory.schemas import DeviceCreate, DeviceKind
from callto.directory.service import DeviceView, DirectoryService
from callto.phones.catalog import Catalog, default_catalog, format_mac
from callto.phones.errors import UnknownConfigFile, UnknownModel, UnknownVendor
from callto.phones.http import PhoneTarget
from callto.phones.render import render_config
from callto.provisioning.errors import (
    DeviceNotUsable,
    MacTaken,
    NothingToServe,
    PhoneNotFound,
    UnknownPhoneModel,
    VendorNotSuggested,
)
from callto.provisioning.feed import Entry, render_feed
from callto.provisioning.models import Fetch, Phone
from callto.provisioning.ports import NotifyResult, PhoneNotifier
from callto.provisioning.schemas import PhoneCreate, PhonePatch, PhoneVariables
from callto.store.database import Database, utcnow

log = logging.getLogger(__name__)

ADMIN_PASSWORD_KEY = "provisioning.phone_admin_password"
FEED_FILE = "phonebook.xml"
KEEP_FETCHES = 50
# What each vendor expects in the Event header of a re-sync NOTIFY (reboot=false: only if needed).
CHECK_SYNC_EVENT = {"yealink": "check-sync;reboot=false", "snom": "check-sync;reboot=false"}


class WrongToken(NothingToServe):
    """A token or MAC nobody has: counts as a guess for the per-address rate limit."""


class Phonebook(Protocol):
    """The part of ``callto.phonebook``'s service the feed uses (when that package is installed)."""

    def iter_visible(self, user_id: int, scope: str = "all") -> Iterator[Any]: ...


@dataclass(frozen=True)
class PhoneView:
    id: int
    mac: str
    vendor: str
    model: str
    label: str
    user_id: int | None
    device_id: int | None
    token: str
    bootstrap_token: str | None
    bootstrap_expires_at: datetime | None
    variables: dict[str, Any]
    strategies: list[str] | None
    http_port: int | None
    http_scheme: str | None
    last_fetch_at: datetime | None
    last_fetch_ip: str | None
    last_user_agent: str | None
    last_file: str | None
    firmware: str | None
    last_reload_at: datetime | None
    last_reload_outcome: str | None
    created_at: datetime


@dataclass(frozen=True)
class FetchRequest:
    """Who asks, and how they reached us (the base URL and host the phone used, our local address)."""

    ip: str
    user_agent: str
    base_url: str
    host: str
    local_ip: str | None = None


@dataclass(frozen=True)
class Served:
    content: bytes
    content_type: str
    phone_id: int
    contains_secrets: bool


def _view(row: Phone) -> PhoneView:
    return PhoneView(
        id=row.id,
        mac=row.mac,
        vendor=row.vendor,
        model=row.model,
        label=row.label,
        user_id=row.user_id,
        device_id=row.device_id,
        token=row.token,
        bootstrap_token=row.bootstrap_token,
        bootstrap_expires_at=row.bootstrap_expires_at,
        variables=dict(row.variables or {}),
        strategies=list(row.strategies) if row.strategies else None,
        http_port=row.http_port,
        http_scheme=row.http_scheme,
        last_fetch_at=row.last_fetch_at,
        last_fetch_ip=row.last_fetch_ip,
        last_user_agent=row.last_user_agent,
        last_file=row.last_file,
        firmware=row.firmware,
        last_reload_at=row.last_reload_at,
        last_reload_outcome=row.last_reload_outcome,
        created_at=row.created_at,
    )


def _variables(data: PhoneVariables | None) -> dict[str, Any]:
    return data.model_dump(exclude_none=True, mode="json") if data else {}


def new_token() -> str:
    return secrets.token_urlsafe(24)


def host_of(address: str) -> str | None:
    """The host part of a registration source address (``1.2.3.4:5060``, ``[::1]:5060``, ``udp:host:port``)."""
    text = address.strip()
    if not text:
        return None
    if text.startswith("["):
        end = text.find("]")
        return text[1:end] if end > 0 else None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    parts = text.split(":")
    for part in parts:
        try:
            return str(ipaddress.ip_address(part))
        except ValueError:
            continue
    if len(parts) == 2:
        return parts[0] or None
    if len(parts) == 3:
        return parts[1] or None
    return text


def _is_ip(value: str | None) -> bool:
    if not value:
        return False
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return not address.is_unspecified


class ProvisioningService:
    def __init__(
        self,
        db: Database,
        directory: DirectoryService,
        status: DeviceStatus,
        settings: Settings,
        *,
        catalog: Catalog | None = None,
        notifier: PhoneNotifier | None = None,
        phonebook: Phonebook | None = None,
    ) -> None:
        self.db = db
        self.directory = directory
        self.status = status
        self.settings = settings
        self.catalog = catalog or default_catalog()
        self._notifier = notifier
        self._phonebook = phonebook
        # The click path's reads (the phone of a device, the phones' web password), kept while the
        # directory generation is unchanged: every write below that changes them bumps it.
        self._phones_by_device: GenerationCache[int, PhoneView | None] = GenerationCache()
        self._admin_password: GenerationCache[str, str] = GenerationCache(max_entries=1)

    # installation-wide
    def admin_password(self) -> str:
        """The web admin password every provisioned phone gets (random, per installation)."""
        # stored encrypted, like the SIP passwords (callto.store.secretbox)
        return self.directory.secret_setting(ADMIN_PASSWORD_KEY, lambda: secrets.token_urlsafe(15))

    # reading
    @staticmethod
    def _load(s: Session, phone_id: int) -> Phone:
        row = s.get(Phone, phone_id)
        if row is None:
            raise PhoneNotFound(f"there is no phone with id {phone_id}", details={"phone_id": phone_id})
        return row

    def get(self, phone_id: int) -> PhoneView:
        with self.db.session() as s:
            return _view(self._load(s, phone_id))

    def list_phones(self) -> list[PhoneView]:
        with self.db.session() as s:
            return [_view(r) for r in s.scalars(select(Phone).order_by(Phone.id))]

    def by_mac(self, mac: str) -> PhoneView | None:
        with self.db.session() as s:
            row = s.scalar(select(Phone).where(Phone.mac == mac))
            return None if row is None else _view(row)

    def fetches(self, phone_id: int) -> list[dict[str, Any]]:
        with self.db.session() as s:
            self._load(s, phone_id)
            rows = s.scalars(select(Fetch).where(Fetch.phone_id == phone_id).order_by(Fetch.id.desc()))
            return [
                {"at": r.at, "ip": r.ip, "user_agent": r.user_agent, "file": r.file, "via": r.via, "status": r.status}
                for r in rows
            ]

    def registration(self, device_id: int | None) -> dict[str, Any]:
        """Whether the phone's SIP device is registered, and from where (sources from the switch)."""
        if device_id is None or not self.status.is_online(device_id):
            return {"registered": False}
        for info in self.status.sources(device_id).values():
            if "address" in info or "host" in info:
                return {
                    "registered": True,
                    "address": str(info.get("address") or info.get("host")),
                    "user_agent": info.get("user_agent"),
                    "since": info.get("since"),
                }
        return {"registered": True}

    # catalog
    def resolve_model(self, mac: str, vendor: str | None, model: str) -> tuple[str, str]:
        if vendor is None:
            candidates = self.catalog.suggest_vendors(mac)
            if len(candidates) != 1:
                raise VendorNotSuggested(
                    "the MAC address does not tell the vendor; give `vendor` too",
                    details={"mac": mac, "candidates": [v.id for v in candidates]},
                )
            vendor = candidates[0].id
        try:
            found = self.catalog.model(vendor, model)
        except (UnknownVendor, UnknownModel) as exc:
            raise UnknownPhoneModel(exc.message, details=exc.details) from exc
        return vendor, found.id

    def suggest(self, mac: str) -> dict[str, Any]:
        candidates = [v.id for v in self.catalog.suggest_vendors(mac)]
        return {"mac": mac, "vendor": candidates[0] if len(candidates) == 1 else None, "candidates": candidates}

    # writing
    def create(self, data: PhoneCreate) -> PhoneView:
        vendor, model = self.resolve_model(data.mac, data.vendor, data.model)
        if self.by_mac(data.mac) is not None:
            raise MacTaken(f"the phone {format_mac(data.mac)} is already registered", details={"mac": data.mac})
        user_id, device, created = self._device_for(data.user_id, data.device_id, vendor, model, None)
        row = Phone(
            mac=data.mac,
            vendor=vendor,
            model=model,
            label=data.label,
            user_id=user_id,
            device_id=device.id if device else None,
            token=new_token(),
            variables=_variables(data.variables),
            strategies=list(data.strategies) if data.strategies else None,
            http_port=data.http_port,
            http_scheme=data.http_scheme,
        )
        if data.bootstrap:
            row.bootstrap_token = new_token()
            row.bootstrap_expires_at = utcnow() + timedelta(hours=24)
        try:
            with self.db.session() as s:
                s.add(row)
                s.flush()
                bump(s)
                view = _view(row)
        except IntegrityError as exc:
            # Two admins adding the same MAC at once: the database has the last word.
            if created and device is not None:
                self._drop_device(device.id)
            raise MacTaken(
                f"the phone {format_mac(data.mac)} is already registered", details={"mac": data.mac}
            ) from exc
        log.info("phone %s (%s %s) added, user %s", format_mac(view.mac), vendor, model, user_id)
        return view

    def update(self, phone_id: int, patch: PhonePatch) -> PhoneView:
        sent = patch.model_fields_set
        current = self.get(phone_id)
        mac = patch.mac if "mac" in sent and patch.mac else current.mac
        vendor_in = patch.vendor if "vendor" in sent and patch.vendor else current.vendor
        model_in = patch.model if "model" in sent and patch.model else current.model
        if "model" in sent or "vendor" in sent or "mac" in sent:
            vendor, model = self.resolve_model(mac, vendor_in, model_in)
        else:
            vendor, model = current.vendor, current.model
        if mac != current.mac:
            other = self.by_mac(mac)
            if other is not None and other.id != phone_id:
                raise MacTaken(f"the phone {format_mac(mac)} is already registered", details={"mac": mac})
        user_id, device_id = current.user_id, current.device_id
        reassign = ("user_id" in sent and patch.user_id != current.user_id) or (
            "device_id" in sent and patch.device_id is not None and patch.device_id != current.device_id
        )
        if reassign:
            wanted_user = patch.user_id if "user_id" in sent else current.user_id
            wanted_device = patch.device_id if "device_id" in sent else None
            old_device = current.device_id
            new_user, device, _ = self._device_for(wanted_user, wanted_device, vendor, model, phone_id)
            if old_device is not None and (device is None or device.id != old_device):
                # The old SIP account goes with the assignment: its credentials stop working at once.
                self._drop_device(old_device)
            user_id, device_id = new_user, device.id if device else None
        try:
            with self.db.session() as s:
                row = self._load(s, phone_id)
                row.mac, row.vendor, row.model = mac, vendor, model
                row.user_id, row.device_id = user_id, device_id
                if "label" in sent and patch.label is not None:
                    row.label = patch.label
                if "variables" in sent:
                    row.variables = _variables(patch.variables)
                if "strategies" in sent:
                    row.strategies = list(patch.strategies) if patch.strategies else None
                if "http_port" in sent:
                    row.http_port = patch.http_port
                if "http_scheme" in sent:
                    row.http_scheme = patch.http_scheme
                if patch.rotate_token:
                    row.token = new_token()
                s.flush()
                bump(s)
                view = _view(row)
        except IntegrityError as exc:
            raise MacTaken(f"the phone {format_mac(mac)} is already registered", details={"mac": mac}) from exc
        return view

    def delete(self, phone_id: int) -> None:
        current = self.get(phone_id)
        with self.db.session() as s:
            s.delete(self._load(s, phone_id))
            bump(s)
        if current.device_id is not None:
            self._drop_device(current.device_id)

    def new_bootstrap(self, phone_id: int, hours: int = 24) -> PhoneView:
        with self.db.session() as s:
            row = self._load(s, phone_id)
            row.bootstrap_token = new_token()
            row.bootstrap_expires_at = utcnow() + timedelta(hours=hours)
            return _view(row)

    def _drop_device(self, device_id: int) -> None:
        with contextlib.suppress(DeviceNotFound):
            self.directory.delete_device(device_id)

    def _device_for(
        self, user_id: int | None, device_id: int | None, vendor: str, model: str, phone_id: int | None
    ) -> tuple[int | None, DeviceView | None, bool]:
        """The user and ``deskphone`` device a phone should use: the linked one, or a new one."""
        if device_id is not None:
            try:
                device = self.directory.get_device(device_id)
            except DeviceNotFound as exc:
                raise DeviceNotUsable(exc.message, details=exc.details) from exc
            if device.kind != "deskphone" or (user_id is not None and device.user_id != user_id):
                raise DeviceNotUsable(
                    "link a desk phone device of the same user", details={"device_id": device_id}
                )
            with self.db.session() as s:
                holder = s.scalar(select(Phone.id).where(Phone.device_id == device_id))
            if holder is not None and holder != phone_id:
                raise DeviceNotUsable(
                    "another phone already uses that device", details={"device_id": device_id, "phone_id": holder}
                )
            return device.user_id, device, False
        if user_id is None:
            return None, None, False
        self.directory.get_user(user_id)
        name = self.catalog.vendor(vendor).name
        device = self.directory.add_device(
            user_id, DeviceCreate(kind=DeviceKind.deskphone, label=f"{name} {model}"[:128])
        )
        return user_id, device, True

    # serving
    def _find_by_token(self, token: str) -> tuple[PhoneView, str] | None:
        if not token or len(token) > 64:
            return None
        with self.db.session() as s:
            row = s.scalar(select(Phone).where(Phone.token == token))
            if row is not None:
                return _view(row), "token"
            row = s.scalar(select(Phone).where(Phone.bootstrap_token == token))
            if row is not None and row.bootstrap_expires_at is not None and row.bootstrap_expires_at > utcnow():
                return _view(row), "bootstrap"
        return None

    def serve_token(self, token: str, file_name: str, req: FetchRequest) -> Served:
        """The file a phone asks for behind its token (secrets included), or NothingToServe."""
        found = self._find_by_token(token)
        if found is None:
            raise WrongToken("there is nothing at this address")
        phone, via = found
        try:
            feed = file_name == FEED_FILE
            served = self._feed(phone) if feed else self._render(phone, file_name, req, secrets=True)
        except NothingToServe:
            self._record(phone, req, file_name, via, 404)
            raise
        if via == "token" and phone.bootstrap_token is not None:
            self._revoke_bootstrap(phone.id)
        self._record(phone, req, file_name, via, 200)
        return served

    def serve_tokenless(self, file_name: str, req: FetchRequest) -> Served:
        """A config without any secret for a known MAC named by the file (or the User-Agent)."""
        match = self.catalog.match_file(file_name, req.user_agent)
        if match is None or match.mac is None:
            raise NothingToServe("there is nothing at this address")
        phone = self.by_mac(match.mac)
        if phone is None:
            raise WrongToken("there is nothing at this address")
        try:
            served = self._render(phone, file_name, req, secrets=False)
        except NothingToServe:
            self._record(phone, req, file_name, "tokenless", 404)
            raise
        self._record(phone, req, file_name, "tokenless", 200)
        return served

    def _render(self, phone: PhoneView, file_name: str, req: FetchRequest, *, secrets: bool) -> Served:
        if phone.device_id is None:
            raise NothingToServe("there is nothing at this address")
        try:
            device = self.directory.get_device(phone.device_id)
            user = self.directory.get_user(device.user_id)
        except (DeviceNotFound, PhoneNotFound) as exc:
            raise NothingToServe("there is nothing at this address") from exc
        variables = dict(phone.variables)
        transport = str(variables.pop("sip_transport", None) or "udp")
        port = self.settings.sip_tls_port if transport == "tls" else self.settings.sip_port
        # The host the phone reached us on for provisioning is one it can reach for SIP too; the SIP
        # domain may be a name only the switch knows (the registrar accepts any domain).
        server = self.settings.public_host or req.host
        variables.update(
            mac=phone.mac,
            account={
                "server": server,
                "port": port,
                "transport": transport,
                "username": device.sip_username,
                "password": device.sip_password,
                "display_name": "".join(ch for ch in user.display_name if ch.isprintable())[:64],
            },
            admin_password=self.admin_password() if secrets else "",
        )
        if _is_ip(req.local_ip):
            variables["callto_address"] = req.local_ip
        if secrets:
            # Only behind the token: these URLs carry it.
            variables["provisioning_url"] = f"{req.base_url}/provisioning/{phone.token}/"
            variables["phonebook_url"] = f"{req.base_url}/provisioning/{phone.token}/{FEED_FILE}"
        try:
            rendered = render_config(
                phone.vendor, phone.model, file_name, variables, include_secrets=secrets, catalog=self.catalog
            )
        except UnknownConfigFile as exc:
            raise NothingToServe("there is nothing at this address", details={}) from exc
        return Served(
            content=rendered.content.encode("utf-8"),
            content_type=rendered.content_type,
            phone_id=phone.id,
            contains_secrets=rendered.contains_secrets,
        )

    def feed_entries(self, user_id: int | None) -> Iterator[Entry]:
        """Company users with an extension, then the phonebook contacts the phone's user sees."""
        for user in sorted(self.directory.list_users(), key=lambda u: u.display_name.lower()):
            if user.extension:
                yield Entry(user.display_name, user.extension)
        phonebook = self._phonebook
        if phonebook is None or user_id is None:
            return
        for contact in phonebook.iter_visible(user_id, "all"):
            name = contact.name or contact.company
            for kind, number in contact.numbers:
                yield Entry(name, number, {"mobile": "Mobile", "home": "Home"}.get(kind, "Work"))

    def _feed(self, phone: PhoneView) -> Served:
        content = render_feed(phone.vendor, self.feed_entries(phone.user_id))
        return Served(content, "text/xml; charset=utf-8", phone.id, contains_secrets=False)

    def _revoke_bootstrap(self, phone_id: int) -> None:
        with self.db.session() as s:
            row = s.get(Phone, phone_id)
            if row is not None:
                row.bootstrap_token = None
                row.bootstrap_expires_at = None

    def _record(self, phone: PhoneView, req: FetchRequest, file_name: str, via: str, status: int) -> None:
        parsed = self.catalog.parse_user_agent(req.user_agent)
        firmware = parsed["firmware"] if parsed["vendor"] == phone.vendor else None
        log.info(
            "provisioning: %s %s fetched %s via %s -> %s (%s)",
            format_mac(phone.mac), req.ip, file_name, via, status, req.user_agent[:120],
        )
        with self.db.session() as s:
            row = s.get(Phone, phone.id)
            if row is None:
                return
            row.last_fetch_at = utcnow()
            if row.last_fetch_ip != req.ip[:64]:
                bump(s)  # the click path falls back to this address
            row.last_fetch_ip = req.ip[:64]
            row.last_user_agent = req.user_agent[:256]
            row.last_file = file_name[:128]
            if firmware:
                row.firmware = firmware[:64]
            s.add(Fetch(phone_id=phone.id, ip=req.ip[:64], user_agent=req.user_agent[:256],
                        file=file_name[:128], via=via, status=status))
            s.flush()
            cutoff = s.scalar(
                select(Fetch.id).where(Fetch.phone_id == phone.id).order_by(Fetch.id.desc()).offset(KEEP_FETCHES)
            )
            if cutoff is not None:
                s.execute(delete(Fetch).where(Fetch.phone_id == phone.id, Fetch.id <= cutoff))

    # click-to-call (the dialer's DeskPhones port)
    def desk_phone(self, device_id: int) -> DeskPhone | None:
        token = self.directory.generation.current()
        phone = self._phones_by_device.load(device_id, token, lambda: self._phone_of_device(device_id))
        return self._desk_phone(device_id, phone, token)

    def cached_desk_phone(self, device_id: int, token: Token) -> tuple[bool, DeskPhone | None]:
        """:meth:`desk_phone` from memory only, for the event loop: (False, None) when something it
        needs has not been read under ``token`` yet."""
        hit, phone = self._phones_by_device.get(device_id, token)
        if not hit:
            return False, None
        if phone is not None and self._admin_password.get(ADMIN_PASSWORD_KEY, token)[0] is False:
            return False, None
        return True, self._desk_phone(device_id, phone, token)

    def _phone_of_device(self, device_id: int) -> PhoneView | None:
        with self.db.session() as s:
            row = s.scalar(select(Phone).where(Phone.device_id == device_id))
            return None if row is None else _view(row)

    def _desk_phone(self, device_id: int, phone: PhoneView | None, token: Token) -> DeskPhone | None:
        if phone is None:
            return None
        registration = self.registration(device_id)
        host = host_of(str(registration["address"])) if registration.get("address") else None
        host = host or phone.last_fetch_ip
        strategies = tuple(phone.strategies) if phone.strategies else None
        if not host:
            return DeskPhone(device_id=device_id, target=None, strategies=strategies)
        vendor = self.catalog.vendor(phone.vendor)
        scheme: Literal["http", "https"] = "https" if phone.http_scheme == "https" else "http"
        target = PhoneTarget(
            vendor=phone.vendor,
            host=host,
            port=phone.http_port or (443 if scheme == "https" else 80),
            scheme=scheme,
            username=vendor.http.username,
            password=self._admin_password.load(ADMIN_PASSWORD_KEY, token, self.admin_password),
        )
        return DeskPhone(device_id=device_id, target=target, strategies=strategies)

    # re-sync
    async def reload(self, phone_id: int) -> NotifyResult:
        phone = await asyncio.to_thread(self.get, phone_id)
        notifier = self._notifier
        if phone.device_id is None:
            result = NotifyResult(False, "not-assigned", "the phone is assigned to nobody: it has no SIP account")
        elif notifier is None:
            result = NotifyResult(
                False, "not-available", "the SIP switch is not running in this server; reboot the phone instead"
            )
        else:
            device = await asyncio.to_thread(self.directory.get_device, phone.device_id)
            event = CHECK_SYNC_EVENT.get(phone.vendor, "check-sync")
            try:
                result = await notifier.check_sync(phone.device_id, device.sip_username, event)
            except Exception as exc:  # the switch's failure must not become a 500 for the admin
                log.exception("check-sync NOTIFY for phone %s failed", phone_id)
                result = NotifyResult(False, "failed", f"{exc.__class__.__name__}")
        await asyncio.to_thread(self._record_reload, phone_id, result)
        return result

    def _record_reload(self, phone_id: int, result: NotifyResult) -> None:
        with self.db.session() as s:
            row = s.get(Phone, phone_id)
            if row is not None:
                row.last_reload_at = utcnow()
                row.last_reload_outcome = result.outcome[:32]

