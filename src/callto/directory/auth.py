"""Logging in and checking who is calling: password (+ TOTP), throttling, bearer tokens."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from callto.directory import security
from callto.directory.errors import (
    InvalidCredentials,
    InvalidToken,
    OtpRequired,
    TooManyAttempts,
    UserNotFound,
)
from callto.directory.events import LoggedOut
from callto.directory.generation import Token
from callto.directory.ratelimit import LoginThrottle
from callto.directory.revoked import RevokedTokens
from callto.directory.security import TokenClaims, TokenSigner
from callto.directory.service import DirectoryService, UserView
from callto.events.bus import Event
from callto.store.errors import StorageUnavailable, is_storage_outage

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class TokenGrant:
    """What an API token (see :mod:`callto.integrations`) allows: its id, kind and scopes."""

    token_id: int
    kind: str  # "personal" or "service"
    scopes: frozenset[str]


class ApiTokens(Protocol):
    """Checks API tokens (not session JWTs): validity, expiry, revocation and the route's scope."""

    def owns(self, token: str) -> bool: ...

    def resolve(self, token: str) -> Principal: ...


@dataclass(frozen=True)
class Principal:
    user: UserView
    claims: TokenClaims
    # The directory generation ``user`` was checked under, when known: later reads of the same request
    # may use it rather than read it again (the request is answered as of that moment).
    generation: Token | None = None
    # Set when the caller used an API token rather than a signed-in session.
    grant: TokenGrant | None = None


class AuthService:
    def __init__(
        self,
        directory: DirectoryService,
        signer: TokenSigner,
        *,
        throttle: LoginThrottle | None = None,
        revoked: RevokedTokens | None = None,
        api_tokens: ApiTokens | None = None,
    ) -> None:
        self.directory = directory
        self.signer = signer
        # who may try when: see LoginThrottle (a guesser elsewhere never locks a user out where they work)
        self.throttle = throttle or LoginThrottle()
        # logged-out tokens by id -> expiry: in memory for the checks, in the database to outlive restarts
        self._revoked: dict[str, float] = {}
        self._prune_at = 1024  # prune expired logouts once more than this many are held
        self.revoked_store = revoked if revoked is not None else RevokedTokens(directory.db)
        # logouts the database did not take (an outage): written by RevocationSync once it is back
        self.unsaved: list[tuple[str, int, float]] = []
        self._lock = threading.Lock()
        # the integrations' API tokens (callto.integrations), checked before the JWT path
        self.api_tokens = api_tokens
        # A logout on another node reaches this one as the same event (through Redis): first subscriber,
        # so the revoked token is known here before the event sessions opened with it are checked again.
        directory.bus.subscribe(self._on_event)

    def login(
        self, username: str, password: str, otp: str | None, address: str
    ) -> tuple[str, datetime, UserView]:
        username = username.strip().lower()
        wait = self.throttle.wait(username, address)
        if wait > 0:
            raise TooManyAttempts(
                f"too many failed logins; try again in {math.ceil(wait)} s",
                details={"retry_after": math.ceil(wait)},
            )
        user = self.directory.find_user(username)
        stored = self._password_hash(user)
        if user is None or not security.verify_password(stored, password):
            self._failed(username, address)
            raise InvalidCredentials("wrong username or password")
        if user.totp_enabled:
            if not otp:
                raise OtpRequired(
                    "enter the 6-digit code from your authenticator app", details={"otp": "required"}
                )
            secret = self._totp_secret(user.id)
            if not secret or not security.verify_totp(secret, otp):
                self._failed(username, address)
                raise InvalidCredentials(
                    "the second-factor code is wrong or expired", details={"otp": "invalid"}
                )
        self.throttle.succeeded(username, address)
        token, expires = self.signer.issue(user.id, user.token_version)
        return token, expires, user

    def _failed(self, username: str, address: str) -> None:
        self.throttle.failed(username, address)

    def _password_hash(self, user: UserView | None) -> str | None:
        if user is None:
            return None
        from callto.directory.models import User

        with self.directory.db.session() as s:
            row = s.get(User, user.id)
            return None if row is None else row.password_hash

    def _totp_secret(self, user_id: int) -> str | None:
        from callto.directory.models import User

        with self.directory.db.session() as s:
            row = s.get(User, user_id)
            return None if row is None else row.totp_secret

    def authenticate(self, token: str) -> Principal:
        if self.api_tokens is not None and self.api_tokens.owns(token):
            return self.api_tokens.resolve(token)
        claims = self._claims(token)
        try:
            user = self.directory.get_user(claims.user_id)
        except UserNotFound as exc:
            raise InvalidToken("the account no longer exists", details={"reason": "no-user"}) from exc
        except Exception as exc:
            # An unreachable database says nothing about the token: 503, and the client keeps its
            # session and retries, rather than the 401 that would make it throw a good session away.
            if is_storage_outage(exc):
                raise StorageUnavailable() from exc
            raise
        return self._principal(user, claims)

    async def authenticate_async(self, token: str) -> Principal:
        """:meth:`authenticate` for the event loop: the user comes from the directory's cache (valid
        until any directory write, by any process), so a known user costs no query and no thread."""
        if self.api_tokens is not None and self.api_tokens.owns(token):
            return await asyncio.to_thread(self.api_tokens.resolve, token)  # copies the request's context
        claims = self._claims(token)
        try:
            user, generation = await self.directory.user_at(claims.user_id)
        except UserNotFound as exc:
            raise InvalidToken("the account no longer exists", details={"reason": "no-user"}) from exc
        except Exception as exc:
            # An unreachable database says nothing about the token: 503, and the client keeps its
            # session and retries, rather than the 401 that would make it throw a good session away.
            if is_storage_outage(exc):
                raise StorageUnavailable() from exc
            raise
        return self._principal(user, claims, generation)

    def _claims(self, token: str) -> TokenClaims:
        claims = self.signer.check(token)
        if claims.jti in self._revoked:
            raise InvalidToken("you have logged out; log in again", details={"reason": "revoked"})
        return claims

    @staticmethod
    def _principal(user: UserView, claims: TokenClaims, generation: Token | None = None) -> Principal:
        if user.token_version != claims.token_version:
            raise InvalidToken(
                "your password was changed; log in again", details={"reason": "password-changed"}
            )
        return Principal(user=user, claims=claims, generation=generation)

    def logout(self, claims: TokenClaims) -> None:
        expires_at = claims.expires_at.timestamp()
        self._revoke(claims.jti, expires_at)
        # addressed to no client: the sessions opened with this token hear it (events.revocation) and close;
        # every node learns the token id (not a secret: it cannot be turned back into the token)
        self.directory.bus.publish(Event.of(LoggedOut(claims.user_id, claims.jti, expires_at), frozenset()))
        # durable, so a node that restarts or starts later refuses the token too; an outage does not undo
        # the logout (it holds here and on the nodes that heard the bus) and the row is written later
        try:
            self.revoked_store.add(claims.jti, claims.user_id, expires_at)
        except Exception as exc:
            log.warning("saving a logout failed (%s); it is saved when the database is back", exc.__class__.__name__)
            with self._lock:
                self.unsaved.append((claims.jti, claims.user_id, expires_at))

    def load_revoked(self) -> int:
        """Read the logouts of tokens not yet expired from the database (at start); how many."""
        rows = self.revoked_store.live()
        for row in rows:
            self._revoke(row.jti, row.expires_at)
        return len(rows)

    def is_revoked(self, jti: str) -> bool:
        return jti in self._revoked

    def revoke(self, jti: str, expires_at: float) -> None:
        """Refuse the token ``jti`` from now on (a logout this node learnt of from the database)."""
        self._revoke(jti, expires_at)

    def _revoke(self, jti: str, expires_at: float) -> None:
        with self._lock:
            if len(self._revoked) > self._prune_at:
                now = time.time()
                self._revoked = {j: exp for j, exp in self._revoked.items() if exp > now}
                # The next prune waits until the live set has doubled: with many live logouts (a start-up
                # reading them all) a prune per logout would cost the square of their number.
                self._prune_at = max(1024, 2 * len(self._revoked))
            self._revoked[jti] = expires_at

    def _on_event(self, event: Event) -> None:
        if event.type == "auth.logged_out" and isinstance(event.data.get("jti"), str):
            exp = event.data.get("exp")
            self._revoke(event.data["jti"], float(exp) if isinstance(exp, int | float) else time.time() + 86400)

