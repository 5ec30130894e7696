"""Secrets the server must read back in clear (SIP digest passwords, the token signing key), kept
encrypted in the database with a key that is not in the database.

The key is ``CALLTO_SECRET_KEY`` when set (the same on every node), else ``<data dir>/secret.key``
(created 0600 on first start). Values are AES-256-GCM, stored as ``enc:v1:<base64url(nonce | ciphertext)>``,
with the value's purpose as associated data, so a ciphertext moved to another kind of field does not
decrypt. A copy of the database alone therefore holds no usable SIP password or signing key; a backup
must hold the key too (or the operator must keep ``CALLTO_SECRET_KEY``).

Values without the prefix are legacy clear text (before encryption at rest): :meth:`SecretBox.reveal`
returns them as they are, and the start-up migration (``DirectoryService.encrypt_stored_secrets``)
rewrites them encrypted.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from callto.errors import CalltoError

PREFIX = "enc:v1:"
KEY_FILE = "secret.key"


class SecretKeyError(CalltoError):
    status = 500
    error = "secret-key"


def is_encrypted(value: str) -> bool:
    return value.startswith(PREFIX)


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SecretKeyError(f"{where} is not a base64 key: {exc}", details={"where": where}) from exc
    if len(key) != 32:
        raise SecretKeyError(
            f"{where} must hold 32 bytes (base64url); it holds {len(key)}", details={"where": where}
        )
    return key


def new_key_text() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


class SecretBox:
    """Encrypts and decrypts the server's stored secrets with one AES-256-GCM key."""

    def __init__(self, key: bytes, source: str) -> None:
        self._aead = AESGCM(key)
        self.source = source  # where the key came from, for messages ("/var/lib/callto/secret.key")

    @classmethod
    def load(cls, data_dir: Path, setting: str = "", *, create: bool = True) -> SecretBox:
        """The key from the setting, else from the key file, created when missing and ``create``."""
        if setting:
            return cls(_decode_key(setting, "CALLTO_SECRET_KEY"), "CALLTO_SECRET_KEY")
        path = data_dir / KEY_FILE
        if not path.exists():
            if not create:
                raise SecretKeyError(
                    f"the database holds encrypted secrets but there is no key: restore {path} from the "
                    "backup it was taken with, or set CALLTO_SECRET_KEY",
                    details={"path": str(path)},
                )
            text = new_key_text()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text + "\n")
        try:
            text = path.read_text(encoding="ascii")
        except (UnicodeDecodeError, OSError) as exc:
            raise SecretKeyError(
                f"cannot read the key {path}: {exc}; it must hold a base64url key (32 bytes)",
                details={"path": str(path)},
            ) from exc
        return cls(_decode_key(text, str(path)), str(path))

    def encrypt(self, value: str, purpose: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, value.encode(), purpose.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def reveal(self, stored: str, purpose: str) -> str:
        """The clear value of ``stored`` (legacy clear text is returned as it is)."""
        if not is_encrypted(stored):
            return stored
        body = stored[len(PREFIX):]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            return self._aead.decrypt(raw[:12], raw[12:], purpose.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise SecretKeyError(
                f"a stored {purpose} does not decrypt with the key in {self.source}: the key does not "
                "belong to this database (restore the key file from the same backup)",
                details={"purpose": purpose, "key": self.source},
            ) from exc
