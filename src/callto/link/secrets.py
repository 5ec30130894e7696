"""Where Link keeps what it must remember: the session token in the OS keyring, the rest in a settings file.

The password is never stored anywhere: it is sent once to log in, and only the server's token is kept, in
the OS keyring (Windows Credential Manager, macOS Keychain, Secret Service on Linux) through ``keyring``.
When there is no working keyring (a Linux desktop without a Secret Service), saving raises
:class:`KeyringUnavailable` and the user chooses: keep the session in memory only, or in a file only they
can read (``session.json``, mode 0600, in the config dir); ``Settings.session_store`` remembers it.
The settings file (JSON in the user's config dir) holds nothing secret: server URL, username, device ids,
the explicitly trusted certificate fingerprint, the shortcut and the start-at-login choice.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import keyring
import keyring.errors

from callto.link import APP_ID
from callto.link.errors import LinkError

KEYRING_SERVICE = "callto-link"
DEFAULT_SHORTCUT = "Ctrl+Alt+D"


def config_dir() -> Path:
    """The per-user folder for Link's settings (``CALLTO_LINK_CONFIG_DIR`` overrides it, for tests)."""
    override = os.environ.get("CALLTO_LINK_CONFIG_DIR")
    if override:
        return Path(override)
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
        return base / "callto" / "Link"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "callto Link"
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / APP_ID


@dataclass
class Settings:
    """Everything Link remembers between runs except the token. Nothing here is secret."""

    server_url: str = ""
    username: str = ""
    main_device_id: int | None = None
    link_device_id: int | None = None
    trusted_cert_sha256: str | None = None
    # The pinned certificate itself (public data) so Link can verify against exactly it.
    trusted_cert_pem: str | None = None
    trusted_cert_server: str | None = None
    shortcut: str = DEFAULT_SHORTCUT
    start_at_login: bool = False
    # "auto" (the system's), "en" or "it".
    language: str = "auto"
    # Off for users who answer on a desk phone: no pop-up from Link when a call comes in.
    incoming_popup: bool = True
    # The audio output the ring tone plays on, by its name as the system shows it; "" for the one calls use.
    ring_device: str = ""
    # Where the session token is kept: "keyring", "file" (chosen when there is no keyring) or "memory".
    session_store: str = "keyring"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def path(cls) -> Path:
        return config_dir() / "settings.json"

    @classmethod
    def load(cls) -> Settings:
        p = cls.path()
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError):
            # A damaged settings file must not stop Link from starting; the user sets it up again.
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def save(self) -> Path:
        p = self.path()
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True), encoding="utf-8")
        if sys.platform != "win32":
            tmp.chmod(0o600)
        tmp.replace(p)
        return p


def _account(server_url: str, username: str) -> str:
    return f"{username}@{server_url}"


class KeyringUnavailable(LinkError):
    """The OS keyring cannot keep the session (no Secret Service, locked, refused)."""

    status = 503
    error = "keyring-unavailable"


def session_file() -> Path:
    return config_dir() / "session.json"


class TokenStore:
    """The session token in the OS keyring, one entry per (server, username); or, by the user's choice when
    there is no keyring, in ``session.json`` readable only by the user."""

    def __init__(self, service: str = KEYRING_SERVICE) -> None:
        self.service = service

    def save(self, server_url: str, username: str, token: str) -> None:
        """Raises :class:`KeyringUnavailable` (never anything else) when the keyring cannot keep it."""
        try:
            keyring.set_password(self.service, _account(server_url, username), token)
        except Exception as exc:  # any backend failure (D-Bus, no backend, locked) means the same to the user
            problem = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise KeyringUnavailable(
                f"The keyring cannot keep the session: {problem}", details={"problem": problem}
            ) from exc

    def save_file(self, server_url: str, username: str, token: str) -> Path:
        """Write the session to ``session.json`` created with mode 0600 (only this user can read it)."""
        path = session_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"account": _account(server_url, username), "token": token}, f)
        tmp.replace(path)
        return path

    def load(self, server_url: str, username: str) -> str | None:
        try:
            token = keyring.get_password(self.service, _account(server_url, username))
        except Exception:  # no keyring at all: the file (if the user chose it) is the only place left
            token = None
        return token or self._load_file(server_url, username)

    @staticmethod
    def _load_file(server_url: str, username: str) -> str | None:
        try:
            data = json.loads(session_file().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if isinstance(data, dict) and data.get("account") == _account(server_url, username):
            token = data.get("token")
            return token if isinstance(token, str) and token else None
        return None

    def delete(self, server_url: str, username: str) -> None:
        with contextlib.suppress(Exception):
            keyring.delete_password(self.service, _account(server_url, username))
        with contextlib.suppress(FileNotFoundError):
            session_file().unlink()

    @staticmethod
    def backend_name() -> str:
        kr = keyring.get_keyring()
        return f"{type(kr).__module__}.{type(kr).__name__}"
