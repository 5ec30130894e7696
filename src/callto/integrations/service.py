"""API tokens (personal tokens with scopes, admin service tokens, their check on every request, the audit
of calls a service token places for another user) and webhook registrations with their delivery log.

A token is ``ct_pat_`` (personal) or ``ct_svc_`` (service) followed by 256 random bits; only its SHA-256
is stored, so the secret is shown once, when it is created. Every use reads the row again (revocation
and expiry take effect on the next request, on every node sharing the database) and checks the route's
scope (:mod:`callto.integrations.scopes`).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select

from callto.directory.auth import Principal, TokenGrant
from callto.directory.errors import InvalidToken, UserNotFound
from callto.directory.security import TokenClaims
from callto.directory.service import DirectoryService, UserView
from callto.integrations import scopes as route_scopes
from callto.integrations.errors import (
    ApiTokenNotFound,
    InvalidTokenRequest,
    InvalidWebhook,
    TokenNotAllowed,
    TokenScopeMissing,
    WebhookNotFound,
)
from callto.integrations.models import ApiToken, Delivery, ServiceCall, Webhook
from callto.store.database import Database

log = logging.getLogger(__name__)

PREFIXES = {"personal": "ct_pat_", "service": "ct_svc_"}
# last_used_at is written at most this often per token: a CRM polling every second must not turn every
# read into a write
LAST_USED_EVERY = timedelta(seconds=30)
MAX_LIFETIME = timedelta(days=730)
NEVER = datetime(9999, 12, 31, tzinfo=UTC)
TOKENS_PER_USER = 50


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class TokenView:
    id: int
    user_id: int
    kind: str
    name: str
    note: str
    scopes: tuple[str, ...]
    prefix: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id, "user_id": self.user_id, "kind": self.kind, "name": self.name, "note": self.note,
            "scopes": list(self.scopes), "prefix": self.prefix, "expires_at": self.expires_at,
            "last_used_at": self.last_used_at, "revoked_at": self.revoked_at, "created_at": self.created_at,
        }


def _view(row: ApiToken) -> TokenView:
    return TokenView(
        id=row.id, user_id=row.user_id, kind=row.kind, name=row.name, note=row.note, scopes=tuple(row.scopes),
        prefix=row.prefix, expires_at=row.expires_at, last_used_at=row.last_used_at, revoked_at=row.revoked_at,
        created_at=row.created_at,
    )


class TokenService:
    """Creates, lists, revokes and checks API tokens (plugged into AuthService as ``api_tokens``)."""

    def __init__(self, db: Database, directory: DirectoryService) -> None:
        self.db = db
        self.directory = directory

    # management
    def create(
        self, user_id: int, kind: str, name: str, token_scopes: list[str], *, note: str = "",
        expires_at: datetime | None, now: datetime | None = None,
    ) -> tuple[TokenView, str]:
        now = now or datetime.now(UTC)
        unknown = [s for s in token_scopes if s not in route_scopes.SCOPES]
        if unknown or not token_scopes:
            raise InvalidTokenRequest(
                "choose at least one scope among the known ones" if not unknown
                else f"unknown scopes: {', '.join(unknown)}",
                details={"known": list(route_scopes.SCOPES), "unknown": unknown},
            )
        if expires_at is not None:
            if expires_at.tzinfo is None:
                expires_at = expires_at.replace(tzinfo=UTC)
            if expires_at <= now or expires_at > now + MAX_LIFETIME:
                raise InvalidTokenRequest(
                    "the expiry must be in the future and at most two years away",
                    details={"field": "expires_at"},
                )
        secret = PREFIXES[kind] + secrets.token_urlsafe(32)
        with self.db.session() as s:
            count = len(s.scalars(select(ApiToken.id).where(
                ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))).all())
            if count >= TOKENS_PER_USER:
                raise InvalidTokenRequest(
                    f"at most {TOKENS_PER_USER} tokens at once: revoke one first", details={"limit": TOKENS_PER_USER}
                )
            row = ApiToken(
                user_id=user_id, kind=kind, name=name, note=note, scopes=sorted(set(token_scopes)),
                secret_hash=hash_secret(secret), prefix=secret[:12], expires_at=expires_at, created_at=now,
            )
            s.add(row)
            s.commit()
            return _view(row), secret

    def tokens(self, *, user_id: int | None = None, kind: str) -> list[TokenView]:
        with self.db.session() as s:
            q = select(ApiToken).where(ApiToken.kind == kind, ApiToken.revoked_at.is_(None))
            if user_id is not None:
                q = q.where(ApiToken.user_id == user_id)
            return [_view(r) for r in s.scalars(q.order_by(ApiToken.id))]

    def revoke(self, token_id: int, *, kind: str, user_id: int | None = None) -> TokenView:
        with self.db.session() as s:
            row = s.get(ApiToken, token_id)
            if row is None or row.kind != kind or (user_id is not None and row.user_id != user_id):
                raise ApiTokenNotFound("there is no such token", details={"token_id": token_id})
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
                s.commit()
            return _view(row)

    # the check on every request (AuthService.api_tokens)
    def owns(self, token: str) -> bool:
        return token.startswith(("ct_pat_", "ct_svc_"))

    def resolve(self, token: str) -> Principal:
        """The principal for ``token`` on the current request, or a typed refusal: 401 for a token that is
        unknown, revoked or expired; 403 for a route outside its scopes (or outside every scope)."""
        now = datetime.now(UTC)
        # a database outage propagates: the API edge answers it 503 storage-unavailable (callto.api.faults)
        view = self._touch(hash_secret(token), now)
        if view is None:
            raise InvalidToken("the API token is not valid", details={"reason": "invalid"})
        if view.revoked_at is not None:
            raise InvalidToken("the API token was revoked", details={"reason": "revoked"})
        if view.expires_at is not None and view.expires_at <= now:
            raise InvalidToken("the API token has expired", details={"reason": "expired"})
        self.check_scope(view)
        try:
            user = self.directory.get_user(view.user_id)
        except UserNotFound as exc:
            raise InvalidToken("the account no longer exists", details={"reason": "no-user"}) from exc
        claims = TokenClaims(
            user_id=user.id, token_version=user.token_version, jti=f"api-token:{view.id}",
            expires_at=view.expires_at or NEVER,
        )
        grant = TokenGrant(token_id=view.id, kind=view.kind, scopes=frozenset(view.scopes))
        return Principal(user=user, claims=claims, grant=grant)

    @staticmethod
    def check_scope(view: TokenView) -> None:
        current = route_scopes.CURRENT.get()
        needed = None if current is None else route_scopes.required(*current)
        if needed is None:
            raise TokenNotAllowed(
                "API tokens cannot be used here: sign in instead", details={"path": current[2] if current else None}
            )
        if route_scopes.ANY_TOKEN in needed:
            return
        if not set(needed) & set(view.scopes):
            raise TokenScopeMissing(
                f"this token lacks the scope {' or '.join(needed)}",
                details={"required": list(needed), "scopes": list(view.scopes)},
            )

    def _touch(self, secret_hash: str, now: datetime) -> TokenView | None:
        with self.db.session() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.secret_hash == secret_hash))
            if row is None:
                return None
            usable = row.revoked_at is None and (row.expires_at is None or row.expires_at > now)
            if usable and (row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY):
                row.last_used_at = now
                s.commit()
            return _view(row)

    # service-token calls
    def record_service_call(
        self, principal: Principal, on_behalf_of: UserView, call_id: str, to: str, outcome: str
    ) -> None:
        grant = principal.grant
        with self.db.session() as s:
            name = ""
            if grant is not None:
                row = s.get(ApiToken, grant.token_id)
                name = row.name if row is not None else ""
            s.add(ServiceCall(
                call_id=call_id, token_id=grant.token_id if grant else None, token_name=name,
                placed_by_user_id=principal.user.id, on_behalf_of_user_id=on_behalf_of.id, to=to, outcome=outcome,
            ))
            s.commit()

    def service_calls(self, *, user_id: int | None = None, call_id: str | None = None,
                      limit: int = 100) -> list[dict[str, Any]]:
        with self.db.session() as s:
            q = select(ServiceCall)
            if user_id is not None:
                q = q.where(ServiceCall.on_behalf_of_user_id == user_id)
            if call_id is not None:
                q = q.where(ServiceCall.call_id == call_id)
            rows = s.scalars(q.order_by(ServiceCall.id.desc()).limit(limit)).all()
            return [
                {"call_id": r.call_id, "token_id": r.token_id, "token_name": r.token_name,
                 "placed_by_user_id": r.placed_by_user_id, "on_behalf_of_user_id": r.on_behalf_of_user_id,
                 "to": r.to, "outcome": r.outcome, "created_at": r.created_at}
                for r in rows
            ]


# webhooks: the admin's registrations and the delivery log (deliveries themselves: events.py)
WEBHOOK_EVENTS = (
    "call.ringing", "call.answered", "call.ended", "call.missed", "history.new", "history.updated", "presence.changed",
)
WEBHOOKS_MAX = 50


@dataclass(frozen=True)
class WebhookView:
    id: int
    url: str
    events: tuple[str, ...]
    description: str
    enabled: bool
    secret: str
    created_at: datetime

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "events": list(self.events), "description": self.description,
                "enabled": self.enabled, "created_at": self.created_at}


def _hook(row: Webhook) -> WebhookView:
    return WebhookView(id=row.id, url=row.url, events=tuple(row.events), description=row.description,
                       enabled=row.enabled, secret=row.secret, created_at=row.created_at)


def check_url(url: str) -> str:
    """An absolute http(s) URL with a host and no credentials in it (they would end up in logs)."""
    try:
        parsed = urlsplit(url.strip())
    except ValueError as exc:
        raise InvalidWebhook("the address is not a valid URL", details={"url": url}) from exc
    if any(c.isspace() or ord(c) < 32 for c in url.strip()):
        raise InvalidWebhook("the address must not contain spaces or control characters", details={"url": url})
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidWebhook("the address must be an http:// or https:// URL with a host", details={"url": url})
    if parsed.username or parsed.password:
        raise InvalidWebhook("put no user or password in the address: every delivery is signed instead",
                             details={"url": url})
    try:
        _ = parsed.port
    except ValueError as exc:
        raise InvalidWebhook("the port is not valid", details={"url": url}) from exc
    return urlunsplit(parsed)


POLICY_KEY = "integrations.webhooks"


@dataclass(frozen=True)
class DeliveryPolicy:
    """How long a delivery may take and be retried (an installation-wide admin setting)."""

    timeout_seconds: float = 5.0
    retry_for_seconds: float = 3600.0
    first_retry_seconds: float = 1.0

    def public(self) -> dict[str, Any]:
        return {"timeout_seconds": self.timeout_seconds, "retry_for_seconds": self.retry_for_seconds,
                "first_retry_seconds": self.first_retry_seconds}


class WebhookService:
    """Webhook registrations and the delivery log; keeps the enabled ones in memory for the dispatcher."""

    def __init__(self, db: Database, directory: DirectoryService) -> None:
        self.db = db
        self.directory = directory
        self.active: tuple[WebhookView, ...] = ()
        self.policy = DeliveryPolicy()

    def refresh(self) -> tuple[WebhookView, ...]:
        with self.db.session() as s:
            rows = s.scalars(select(Webhook).where(Webhook.enabled.is_(True)).order_by(Webhook.id)).all()
            self.active = tuple(_hook(r) for r in rows)
        stored = self.directory.get_setting(POLICY_KEY)
        self.policy = DeliveryPolicy(**stored) if isinstance(stored, dict) else DeliveryPolicy()
        return self.active

    def set_policy(self, policy: DeliveryPolicy) -> DeliveryPolicy:
        self.directory.put_setting(POLICY_KEY, policy.public())
        self.policy = policy
        return policy

    def create(self, url: str, events: list[str], description: str, enabled: bool, by: int) -> tuple[WebhookView, str]:
        url = check_url(url)
        secret = "whsec_" + secrets.token_urlsafe(32)
        with self.db.session() as s:
            if len(s.scalars(select(Webhook.id)).all()) >= WEBHOOKS_MAX:
                raise InvalidWebhook(f"at most {WEBHOOKS_MAX} webhooks", details={"limit": WEBHOOKS_MAX})
            row = Webhook(url=url, events=sorted(set(events)), description=description, secret=secret,
                          enabled=enabled, created_by=by)
            s.add(row)
            s.commit()
            view = _hook(row)
        self.refresh()
        return view, secret

    def get(self, webhook_id: int) -> WebhookView:
        with self.db.session() as s:
            row = s.get(Webhook, webhook_id)
            if row is None:
                raise WebhookNotFound("there is no such webhook", details={"webhook_id": webhook_id})
            return _hook(row)

    def all(self) -> list[WebhookView]:
        with self.db.session() as s:
            return [_hook(r) for r in s.scalars(select(Webhook).order_by(Webhook.id))]

    def update(self, webhook_id: int, changes: dict[str, Any]) -> WebhookView:
        with self.db.session() as s:
            row = s.get(Webhook, webhook_id)
            if row is None:
                raise WebhookNotFound("there is no such webhook", details={"webhook_id": webhook_id})
            if "url" in changes:
                row.url = check_url(changes["url"])
            if "events" in changes:
                row.events = sorted(set(changes["events"]))
            for key in ("description", "enabled"):
                if key in changes:
                    setattr(row, key, changes[key])
            s.commit()
            view = _hook(row)
        self.refresh()
        return view

    def delete(self, webhook_id: int) -> None:
        with self.db.session() as s:
            row = s.get(Webhook, webhook_id)
            if row is None:
                raise WebhookNotFound("there is no such webhook", details={"webhook_id": webhook_id})
            s.delete(row)
            s.commit()
        self.refresh()

    # the delivery log
    def log_new(self, webhook_id: int, delivery_id: str, event_type: str, payload: dict[str, Any]) -> int | None:
        with self.db.session() as s:
            if s.get(Webhook, webhook_id) is None:
                return None  # deleted meanwhile
            row = Delivery(webhook_id=webhook_id, delivery_id=delivery_id, event_type=event_type, status="pending",
                           attempts=0, error="", payload=payload)
            s.add(row)
            s.commit()
            return row.id

    def log_attempt(self, row_id: int, *, status: str, attempts: int, response_status: int | None, error: str,
                    latency_ms: float | None) -> None:
        with self.db.session() as s:
            row = s.get(Delivery, row_id)
            if row is None:
                return
            row.status, row.attempts, row.response_status = status, attempts, response_status
            row.error, row.latency_ms, row.updated_at = error[:2000], latency_ms, datetime.now(UTC)
            s.commit()

    def deliveries(self, webhook_id: int, limit: int = 50) -> list[dict[str, Any]]:
        self.get(webhook_id)
        with self.db.session() as s:
            rows = s.scalars(select(Delivery).where(Delivery.webhook_id == webhook_id)
                             .order_by(Delivery.id.desc()).limit(limit)).all()
            return [
                {"id": r.id, "webhook_id": r.webhook_id, "delivery_id": r.delivery_id, "event_type": r.event_type,
                 "status": r.status, "attempts": r.attempts, "response_status": r.response_status, "error": r.error,
                 "latency_ms": r.latency_ms, "created_at": r.created_at, "updated_at": r.updated_at}
                for r in rows
            ]
