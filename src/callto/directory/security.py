"""Secrets and proofs: password hashing (argon2), signed session tokens (JWT), TOTP, generated secrets."""

from __future__ import annotations

import math
import secrets
import string
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from callto.directory.errors import InvalidToken

_hasher = PasswordHasher()
# Hash of a random password: verifying against it when the user does not exist keeps timing uniform.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))
_ALPHABET = string.ascii_letters + string.digits
CHECKED_TOKENS = 20_000  # verified tokens remembered (see TokenSigner.check)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def generate_password(length: int = 16) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def generate_sip_username() -> str:
    return "d" + secrets.token_hex(5)


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    token_version: int
    jti: str
    expires_at: datetime


class TokenSigner:
    """Issues and checks the bearer tokens the API and the event stream accept."""

    algorithm = "HS256"

    def __init__(self, key: str, ttl_seconds: int) -> None:
        self._key = key
        self.ttl = timedelta(seconds=ttl_seconds)
        self._checked: dict[str, TokenClaims] = {}

    def issue(self, user_id: int, token_version: int, now: datetime | None = None) -> tuple[str, datetime]:
        now = now or datetime.now(UTC)
        # JWT's exp is whole seconds: round up, so a token lives at least the TTL (truncating could leave a
        # one-second token valid for a few milliseconds)
        expires = datetime.fromtimestamp(math.ceil((now + self.ttl).timestamp()), UTC)
        payload = {
            "sub": str(user_id),
            "ver": token_version,
            "jti": secrets.token_hex(8),
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
        }
        return jwt.encode(payload, self._key, algorithm=self.algorithm), expires

    def check(self, token: str) -> TokenClaims:
        """The token's claims if its signature is good and it has not expired.

        A verified token is remembered (the same string always carries the same claims; only its expiry
        depends on the time, and that is checked on every use): an HMAC check and JSON decode cost
        ~0.1 ms, a dictionary lookup nothing, and this runs on every API request."""
        claims = self._checked.get(token)
        if claims is not None:
            if claims.expires_at.timestamp() <= time.time():
                self._checked.pop(token, None)
                raise InvalidToken("your session has expired; log in again", details={"reason": "expired"})
            return claims
        claims = self._verify(token)
        if len(self._checked) >= CHECKED_TOKENS:
            self._checked.clear()
        self._checked[token] = claims
        return claims

    def _verify(self, token: str) -> TokenClaims:
        try:
            payload = jwt.decode(
                token, self._key, algorithms=[self.algorithm], options={"require": ["exp", "sub"]}
            )
            return TokenClaims(
                user_id=int(payload["sub"]),
                token_version=int(payload.get("ver", 0)),
                jti=str(payload.get("jti", "")),
                expires_at=datetime.fromtimestamp(int(payload["exp"]), UTC),
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("your session has expired; log in again", details={"reason": "expired"}) from exc
        except (jwt.InvalidTokenError, ValueError, KeyError) as exc:
            raise InvalidToken("the token is not valid; log in again", details={"reason": "invalid"}) from exc


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, username: str, issuer: str = "callto") -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def verify_totp(secret: str, code: str) -> bool:
    code = code.strip().replace(" ", "")
    return code.isdigit() and pyotp.TOTP(secret).verify(code, valid_window=1)
