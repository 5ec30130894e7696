"""The directory's behaviour: users, devices, main device, and what other packages may ask of it.

Plain arguments in, plain views out; nothing here knows about HTTP. Other packages (the SIP switch, the
dialer, presence) use :class:`DirectoryService` and the views, never the tables.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from callto.directory import security
from callto.directory.errors import (
    AlreadyExists,
    BadOtp,
    DeviceNotFound,
    DeviceNotOwned,
    LastAdmin,
    UserNotFound,
)
from callto.directory.events import (
    DeviceAdded,
    DeviceRemoved,
    DndChanged,
    MainDeviceChanged,
    PreferencesChanged,
    UserAdded,
    UserChanged,
    UserRemoved,
)
from callto.directory.generation import Generation, GenerationCache, SharedRead, Token, bump
from callto.directory.models import Device, Setting, User
from callto.directory.online import DeviceStatus
from callto.directory.schemas import (
    PREFERENCE_DEFAULTS,
    DeviceCreate,
    PreferencesPatch,
    Role,
    UserCreate,
    UserPatch,
)
from callto.errors import Conflict, InvalidInput
from callto.events.bus import Event, EventBus
from callto.store.database import Database, utcnow
from callto.store.secretbox import PREFIX, SecretBox

# Associated data of each kind of stored secret (see callto.store.secretbox).
SIP_PASSWORD = "sip-password"

DEFAULT_LABELS = {"webphone": "Web phone", "link": "Link", "deskphone": "Desk phone"}
# A user has one browser phone and one Link; desk phones can be several.
SINGLE_KINDS = {"webphone", "link"}


@dataclass(frozen=True)
class DeviceView:
    id: int
    user_id: int
    kind: str
    label: str
    sip_username: str
    sip_password: str
    online: bool

    def public(self, *, with_secret: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "user_id": self.user_id,
            "kind": self.kind,
            "label": self.label,
            "online": self.online,
        }
        if with_secret:
            out["sip"] = {"username": self.sip_username, "password": self.sip_password}
        return out


@dataclass(frozen=True)
class UserView:
    id: int
    username: str
    display_name: str
    extension: str | None
    mobile: str | None
    role: str
    outbound: str
    main_device_id: int | None
    dnd: bool
    totp_enabled: bool
    token_version: int
    created_at: datetime
    devices: tuple[DeviceView, ...]
    # Only what the user chose (see :meth:`DirectoryService.preferences_of` for the filled-in view).
    chosen_preferences: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def device(self, device_id: int) -> DeviceView | None:
        return next((d for d in self.devices if d.id == device_id), None)

    @property
    def main_device(self) -> DeviceView | None:
        return None if self.main_device_id is None else self.device(self.main_device_id)

    def public(self, *, with_secrets: bool = False) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "extension": self.extension,
            "mobile": self.mobile,
            "role": self.role,
            "outbound": self.outbound,
            "main_device_id": self.main_device_id,
            "dnd": self.dnd,
            "totp_enabled": self.totp_enabled,
            "created_at": self.created_at,
            "devices": [d.public(with_secret=with_secrets) for d in self.devices],
        }


@dataclass(frozen=True)
class SipAccount:
    """What the SIP switch needs to authenticate and route a device."""

    device_id: int
    user_id: int
    kind: str
    username: str
    password: str
    extension: str | None
    display_name: str
    outbound: str


class DirectoryService:
    """Users, devices and settings. Reads of a user by id are served from memory while the directory
    generation (:mod:`callto.directory.generation`) is unchanged; every write here bumps it."""

    def __init__(self, db: Database, bus: EventBus, status: DeviceStatus, box: SecretBox) -> None:
        self.db = db
        self.bus = bus
        self.status = status
        # SIP passwords and secret settings are stored encrypted with this key, read back in clear here
        self.box = box
        self.generation = Generation(db)
        # PostgreSQL: the token's read shared by the requests that ask at the same time (see SharedRead)
        self._shared_token: SharedRead[Token] = SharedRead(self.generation.current)
        self._users: GenerationCache[int, UserView] = GenerationCache()

    # views
    def _device_view(self, device: Device) -> DeviceView:
        return DeviceView(
            id=device.id,
            user_id=device.user_id,
            kind=device.kind,
            label=device.label,
            sip_username=device.sip_username,
            sip_password=self.box.reveal(device.sip_password, SIP_PASSWORD),
            online=self.status.is_online(device.id),
        )

    def _user_view(self, user: User) -> UserView:
        return UserView(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            extension=user.extension,
            mobile=user.mobile,
            role=user.role,
            outbound=user.outbound,
            main_device_id=user.main_device_id,
            dnd=user.dnd,
            totp_enabled=user.totp_enabled,
            token_version=user.token_version,
            created_at=user.created_at,
            devices=tuple(self._device_view(d) for d in user.devices),
            chosen_preferences=dict(user.preferences or {}),
        )

    @staticmethod
    def _load(session: Session, user_id: int) -> User:
        user = session.get(User, user_id, options=[selectinload(User.devices)])
        if user is None:
            raise UserNotFound(f"there is no user with id {user_id}", details={"user_id": user_id})
        return user

    # users
    def get_user(self, user_id: int) -> UserView:
        token = self.generation.current()
        hit, view = self._users.get(user_id, token)
        if hit and view is not None:
            return self._fresh_online(view)
        return self._read_user(user_id, token)

    async def user(self, user_id: int) -> UserView:
        """:meth:`get_user` for the event loop: from memory when cached (no thread, no query), else read
        in a worker thread."""
        return (await self.user_at(user_id))[0]

    async def user_at(self, user_id: int) -> tuple[UserView, Token]:
        """:meth:`user` and the generation token it is valid under."""
        token = await self.token()
        hit, view = self._users.get(user_id, token)
        if hit and view is not None:
            return self._fresh_online(view), token
        return await asyncio.to_thread(self._read_user, user_id, token), token

    async def token(self) -> Token:
        """The current generation token, read without blocking the loop (see :attr:`Generation.inline`)."""
        if self.generation.inline:
            return self.generation.current_on_loop()
        return await self._shared_token()

    def _read_user(self, user_id: int, token: Token) -> UserView:
        with self.db.session() as s:
            view = self._user_view(self._load(s, user_id))
        self._users.put(user_id, token, view)
        return view

    def _fresh_online(self, view: UserView) -> UserView:
        # Online state lives in memory (registrations, sessions), not in the cached rows.
        is_online = self.status.is_online
        if all(d.online == is_online(d.id) for d in view.devices):
            return view
        return replace(view, devices=tuple(replace(d, online=is_online(d.id)) for d in view.devices))

    def find_user(self, username: str) -> UserView | None:
        with self.db.session() as s:
            user = s.scalar(
                select(User).options(selectinload(User.devices)).where(User.username == username.lower())
            )
            return None if user is None else self._user_view(user)

    def list_users(self) -> list[UserView]:
        with self.db.session() as s:
            users = s.scalars(select(User).options(selectinload(User.devices)).order_by(User.id))
            return [self._user_view(u) for u in users]

    def user_by_extension(self, extension: str) -> UserView | None:
        with self.db.session() as s:
            user = s.scalar(
                select(User).options(selectinload(User.devices)).where(User.extension == extension)
            )
            return None if user is None else self._user_view(user)

    def create_user(self, data: UserCreate) -> UserView:
        with self.db.session() as s:
            self._check_unique(s, username=data.username, extension=data.extension)
            user = User(
                username=data.username,
                display_name=data.display_name,
                extension=data.extension,
                mobile=data.mobile,
                role=data.role.value,
                outbound=data.outbound.value,
                password_hash=security.hash_password(data.password),
                dnd=False,
                totp_enabled=False,
                token_version=0,
            )
            s.add(user)
            self._flush(s)
            bump(s)
            view = self._user_view(self._load(s, user.id))
        self.bus.publish(Event.of(UserAdded(view.id), None))
        return view

    def update_user(self, user_id: int, patch: UserPatch) -> UserView:
        changes = patch.model_dump(exclude_unset=True)
        with self.db.session() as s:
            user = self._load(s, user_id)
            if "username" in changes and changes["username"] is None:
                raise InvalidInput("username cannot be removed", details={"field": "username"})
            self._check_unique(
                s,
                username=changes.get("username"),
                extension=changes.get("extension"),
                exclude_id=user_id,
            )
            if changes.get("role") == "user" and user.role == "admin":
                self._keep_an_admin(s, user_id)
            for name in ("username", "display_name", "extension", "mobile"):
                if name in changes:
                    if name == "display_name" and changes[name] is None:
                        raise InvalidInput("display_name cannot be empty", details={"field": name})
                    setattr(user, name, changes[name])
            for name in ("role", "outbound"):
                if changes.get(name) is not None:
                    setattr(user, name, str(changes[name]))
            if changes.get("password") is not None:
                user.password_hash = security.hash_password(changes["password"])
                user.token_version += 1
            if "totp_enabled" in changes:
                if changes["totp_enabled"]:
                    raise InvalidInput(
                        "a second factor is switched on by the user, from their own settings",
                        details={"field": "totp_enabled"},
                    )
                user.totp_enabled = False
                user.totp_secret = None
            self._flush(s)
            bump(s)
            view = self._user_view(self._load(s, user_id))
        self.bus.publish(Event.of(UserChanged(user_id), None))
        return view

    def delete_user(self, user_id: int) -> None:
        with self.db.session() as s:
            user = self._load(s, user_id)
            if user.role == "admin":
                self._keep_an_admin(s, user_id)
            device_ids = [d.id for d in user.devices]
            s.delete(user)
            bump(s)
        for device_id in device_ids:
            self.status.forget_device(device_id)
        self.bus.publish(Event.of(UserRemoved(user_id), None))

    def reset_password(self, user_id: int, password: str | None = None) -> str:
        password = password or security.generate_password()
        with self.db.session() as s:
            user = self._load(s, user_id)
            user.password_hash = security.hash_password(password)
            user.token_version += 1
            bump(s)
        # open event sessions of the user are checked again on this (events.revocation) and closed
        self.bus.publish(Event.of(UserChanged(user_id), None))
        return password

    def set_dnd(self, user_id: int, dnd: bool) -> UserView:
        with self.db.session() as s:
            user = self._load(s, user_id)
            user.dnd = dnd
            bump(s)
            view = self._user_view(user)
        self.bus.publish(Event.of(DndChanged(user_id, dnd), None))
        return view

    # preferences
    @staticmethod
    def preferences_of(view: UserView) -> dict[str, Any]:
        """The user's preferences with defaults for what they never chose, and when they last chose."""
        chosen = view.chosen_preferences
        out = {key: chosen.get(key, default) for key, default in PREFERENCE_DEFAULTS.items()}
        out["updated_at"] = chosen.get("updated_at")
        return out

    def set_preferences(self, user_id: int, patch: PreferencesPatch) -> dict[str, Any]:
        """Apply the keys ``patch`` carries (``None``: back to the default) and tell the user's sessions."""
        with self.db.session() as s:
            user = self._load(s, user_id)
            chosen = dict(user.preferences or {})
            for key in patch.model_fields_set:
                value = getattr(patch, key)
                if value is None:
                    chosen.pop(key, None)
                else:
                    chosen[key] = value.value if isinstance(value, Enum) else value
            chosen["updated_at"] = utcnow().isoformat()
            # A new dict: the JSON column notices a replaced value, not one changed in place.
            user.preferences = chosen
            bump(s)
            view = self._user_view(user)
        out = self.preferences_of(view)
        # Every open web tab and Link of the user switch at once (the hub sends it to the user's sessions).
        self.bus.publish(Event.of(PreferencesChanged(dict(out)), frozenset({user_id})))
        return out

    def ensure_first_admin(self, password: str = "") -> str | None:
        """Create the ``admin`` user when there are no users at all; returns the password if created."""
        with self.db.session() as s:
            if s.scalar(select(func.count()).select_from(User)):
                return None
        password = password or security.generate_password()
        self.create_user(
            UserCreate(
                username="admin", display_name="Administrator", password=password, role=Role.admin
            )
        )
        return password

    def _keep_an_admin(self, s: Session, leaving_id: int) -> None:
        others = s.scalar(
            select(func.count()).select_from(User).where(User.role == "admin", User.id != leaving_id)
        )
        if not others:
            raise LastAdmin("callto needs at least one administrator; appoint another one first")

    @staticmethod
    def _check_unique(
        s: Session, *, username: str | None, extension: str | None, exclude_id: int | None = None
    ) -> None:
        if username is not None:
            q = select(User.id).where(User.username == username)
            if exclude_id is not None:
                q = q.where(User.id != exclude_id)
            if s.scalar(q) is not None:
                raise AlreadyExists(
                    f"the username {username!r} is taken", details={"field": "username"}
                )
        if extension is not None:
            q = select(User.id).where(User.extension == extension)
            if exclude_id is not None:
                q = q.where(User.id != exclude_id)
            if s.scalar(q) is not None:
                raise AlreadyExists(
                    f"the extension {extension} belongs to another user", details={"field": "extension"}
                )

    @staticmethod
    def _flush(s: Session) -> None:
        try:
            s.flush()
        except IntegrityError as exc:
            # Two admins racing for the same name or extension: the database has the last word.
            raise AlreadyExists("that username or extension is already taken") from exc

    # devices
    def add_device(self, user_id: int, data: DeviceCreate) -> DeviceView:
        kind = data.kind.value
        with self.db.session() as s:
            user = self._load(s, user_id)
            if kind in SINGLE_KINDS and any(d.kind == kind for d in user.devices):
                raise Conflict(
                    f"{user.username} already has a {kind} device",
                    error="device-exists",
                    details={"kind": kind},
                )
            device = Device(
                user_id=user_id,
                kind=kind,
                label=data.label or DEFAULT_LABELS[kind],
                sip_username=security.generate_sip_username(),
                sip_password=self.box.encrypt(security.generate_password(24), SIP_PASSWORD),
            )
            s.add(device)
            s.flush()
            if user.main_device_id is None:
                user.main_device_id = device.id
            bump(s)
            view = self._device_view(device)
        self.bus.publish(Event.of(DeviceAdded(view.id, kind), frozenset({user_id})))
        return view

    def get_device(self, device_id: int) -> DeviceView:
        with self.db.session() as s:
            device = s.get(Device, device_id)
            if device is None:
                raise DeviceNotFound(
                    f"there is no device with id {device_id}", details={"device_id": device_id}
                )
            return self._device_view(device)

    def delete_device(self, device_id: int) -> None:
        with self.db.session() as s:
            device = s.get(Device, device_id)
            if device is None:
                raise DeviceNotFound(
                    f"there is no device with id {device_id}", details={"device_id": device_id}
                )
            user = self._load(s, device.user_id)
            user_id = user.id
            s.delete(device)
            s.flush()
            if user.main_device_id == device_id:
                remaining = [d for d in user.devices if d.id != device_id]
                user.main_device_id = remaining[0].id if remaining else None
            bump(s)
        self.status.forget_device(device_id)
        self.bus.publish(Event.of(DeviceRemoved(device_id), frozenset({user_id})))

    def set_main_device(self, user_id: int, device_id: int) -> UserView:
        with self.db.session() as s:
            user = self._load(s, user_id)
            if not any(d.id == device_id for d in user.devices):
                raise DeviceNotOwned(
                    "that device is not one of yours", details={"device_id": device_id}
                )
            user.main_device_id = device_id
            bump(s)
            view = self._user_view(user)
        self.bus.publish(Event.of(MainDeviceChanged(device_id), frozenset({user_id})))
        return view

    def own_device(self, user_id: int, device_id: int) -> DeviceView:
        """The device, if it belongs to ``user_id``; another user's device is the same as none (403)."""
        with self.db.session() as s:
            device = s.get(Device, device_id)
            if device is None or device.user_id != user_id:
                raise DeviceNotOwned(
                    "that device is not one of yours", details={"device_id": device_id}
                )
            return self._device_view(device)

    # for the SIP switch
    def sip_account(self, sip_username: str) -> SipAccount | None:
        with self.db.session() as s:
            device = s.scalar(
                select(Device).options(selectinload(Device.user)).where(
                    Device.sip_username == sip_username
                )
            )
            if device is None:
                return None
            return SipAccount(
                device_id=device.id,
                user_id=device.user_id,
                kind=device.kind,
                username=device.sip_username,
                password=self.box.reveal(device.sip_password, SIP_PASSWORD),
                extension=device.user.extension,
                display_name=device.user.display_name,
                outbound=device.user.outbound,
            )

    def all_sip_accounts(self) -> list[SipAccount]:
        """Every device's SIP account in one query (the switch loads them at start)."""
        with self.db.session() as s:
            rows = s.scalars(select(Device).options(selectinload(Device.user))).all()
            return [
                SipAccount(
                    device_id=d.id, user_id=d.user_id, kind=d.kind, username=d.sip_username,
                    password=self.box.reveal(d.sip_password, SIP_PASSWORD), extension=d.user.extension,
                    display_name=d.user.display_name,
                    outbound=d.user.outbound,
                )
                for d in rows
            ]

    # secrets at rest
    @staticmethod
    def holds_encrypted_secrets(db: Database) -> bool:
        """Whether any stored secret is encrypted already (then a missing key is an error, not a first run)."""
        with db.session() as s:
            if s.scalar(select(Device.id).where(Device.sip_password.startswith(PREFIX)).limit(1)) is not None:
                return True
            row = s.get(Setting, "jwt_key")
            return row is not None and isinstance(row.value, str) and row.value.startswith(PREFIX)

    def encrypt_stored_secrets(self) -> int:
        """The data migration to encryption at rest (run at every start; idempotent): SIP passwords still in
        clear are encrypted. Also proves the key: an encrypted one that does not decrypt stops the start."""
        with self.db.session() as s:
            sample = s.scalar(select(Device.sip_password).where(Device.sip_password.startswith(PREFIX)).limit(1))
            if sample is not None:
                self.box.reveal(sample, SIP_PASSWORD)
            clear = s.scalars(select(Device).where(~Device.sip_password.startswith(PREFIX))).all()
            for device in clear:
                device.sip_password = self.box.encrypt(device.sip_password, SIP_PASSWORD)
            if clear:
                bump(s)
        return len(clear)

    def secret_setting(self, key: str, make: Any) -> str:
        """An installation-wide secret (the token signing key): created once with ``make()``, stored
        encrypted (a clear one from before is encrypted now), returned in clear."""
        stored = str(self.setting_or_create(key, lambda: self.box.encrypt(str(make()), key)))
        value = self.box.reveal(stored, key)
        if not stored.startswith(PREFIX):
            self.put_setting(key, self.box.encrypt(value, key))
        return value

    # installation-wide settings
    def get_setting(self, key: str) -> Any:
        with self.db.session() as s:
            row = s.get(Setting, key)
            return None if row is None else row.value

    def put_setting(self, key: str, value: Any) -> None:
        with self.db.session() as s:
            row = s.get(Setting, key)
            if row is None:
                s.add(Setting(key=key, value=value))
            else:
                row.value = value
            bump(s)

    def setting_or_create(self, key: str, make: Any) -> Any:
        """Read a setting, creating it with ``make()`` once; safe when several nodes start at once."""
        value = self.get_setting(key)
        if value is not None:
            return value
        try:
            with self.db.session() as s:
                s.add(Setting(key=key, value=make()))
        except IntegrityError:
            pass
        return self.get_setting(key)


class TotpService:
    """The user's own second factor: set up, confirm, switch off."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def begin(self, user_id: int) -> tuple[str, str]:
        with self.db.session() as s:
            user = DirectoryService._load(s, user_id)
            if user.totp_enabled:
                raise Conflict("a second factor is already on; switch it off first", error="otp-enabled")
            user.totp_secret = security.new_totp_secret()
            return user.totp_secret, security.totp_uri(user.totp_secret, user.username)

    def confirm(self, user_id: int, otp: str) -> None:
        with self.db.session() as s:
            user = DirectoryService._load(s, user_id)
            if not user.totp_secret:
                raise Conflict("start the second-factor set-up first", error="otp-not-started")
            if not security.verify_totp(user.totp_secret, otp):
                raise BadOtp("that code is not right; check the phone's clock and try the next code")
            user.totp_enabled = True
            bump(s)

    def disable(self, user_id: int, otp: str) -> None:
        with self.db.session() as s:
            user = DirectoryService._load(s, user_id)
            if not user.totp_enabled or not user.totp_secret:
                return
            if not security.verify_totp(user.totp_secret, otp):
                raise BadOtp("that code is not right")
            user.totp_enabled = False
            user.totp_secret = None
            bump(s)
