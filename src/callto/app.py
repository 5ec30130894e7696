"""Composition root: builds every service from the settings, wires them, and serves HTTP(S).

This is the only module that knows all the packages. Each feature receives what it needs through its
constructor; routes find services on ``app.state``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from sqlalchemy import text

from callto import __version__
from callto.api import errors as api_errors
from callto.api.headers import SecurityHeaders
from callto.api.limits import BodyLimit
from callto.config import Settings
from callto.directory.auth import AuthService
from callto.directory.http import router as directory_router
from callto.directory.online import DeviceStatus
from callto.directory.ratelimit import LoginThrottle
from callto.directory.security import TokenSigner
from callto.directory.service import DirectoryService, TotpService
from callto.events.bus import EventBus
from callto.events.http import router as events_router
from callto.events.hub import SessionHub
from callto.events.revocation import Revocation, RevocationSync
from callto.store import migrate
from callto.store.database import Database
from callto.store.private import check_private, private_dir
from callto.store.secretbox import SecretBox
from callto.store.shared import SharedState

log = logging.getLogger(__name__)


class Component(Protocol):
    """Something with a life of its own inside the server (the SIP switch, rtpengine, ...)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Services:
    settings: Settings
    db: Database
    bus: EventBus
    hub: SessionHub
    status: DeviceStatus
    directory: DirectoryService
    auth: AuthService
    totp: TotpService
    components: list[Component] = field(default_factory=list)
    first_admin_password: str | None = None
    # Services of feature packages, by name ("sip", "dialer", "phonebook", ...), set by their wiring.
    features: dict[str, Any] = field(default_factory=dict)
    # With Redis: the throttles' counts, idempotency answers and webhook claims of the whole deployment.
    shared: SharedState | None = None


# Feature packages that plug themselves in: each has ``<package>/wiring.py`` with
# ``install(app: FastAPI, services: Services) -> None`` that builds its services (appending long-lived
# ones to ``services.components``), puts them on ``app.state`` / ``services.features`` and adds its
# routers. Order matters: a feature may use what an earlier one installed.
FEATURES = (
    "callto.events",
    "callto.media",
    "callto.switchboard",
    "callto.phonebook",
    "callto.history",
    "callto.presence",
    "callto.phones",
    "callto.provisioning",
    "callto.dialer",
    "callto.integrations",
)


def build_services(settings: Settings, *, migrate_db: bool = True) -> Services:
    private_dir(settings.data_dir)  # 0700: it holds the database, keys and certificates
    db = Database(settings.effective_database_url)
    if migrate_db:
        migrate.upgrade(db)
    # The key of the secrets stored encrypted (SIP passwords, the signing key): never in the database.
    # A first start creates it; a database with encrypted secrets and no key is refused, by name.
    box = SecretBox.load(
        settings.data_dir, settings.secret_key, create=not DirectoryService.holds_encrypted_secrets(db)
    )
    check_private(settings.data_dir)
    bus = EventBus(settings.redis_url, settings.effective_redis_prefix)
    hub = SessionHub()
    status = DeviceStatus(bus)
    directory = DirectoryService(db, bus, status, box)
    directory.generation.ensure()  # the row every directory write bumps (caches depend on it)
    directory.encrypt_stored_secrets()  # SIP passwords from before encryption at rest
    key = directory.secret_setting("jwt_key", lambda: secrets.token_urlsafe(48))
    shared = SharedState(settings.redis_url, settings.effective_redis_prefix) if settings.redis_url else None
    auth = AuthService(
        directory, TokenSigner(str(key), settings.token_ttl_seconds), throttle=LoginThrottle(shared=shared)
    )
    auth.load_revoked()  # logouts of tokens still valid: refused after a restart, and by a node that joins later
    bus.subscribe(hub.deliver)
    revocation = Revocation(hub, auth)
    bus.subscribe(revocation.on_event)  # revoked tokens and removed devices close their sessions
    hub.on_device_session(
        lambda user_id, device_id, session_id, online: status.set(
            user_id, device_id, f"session:{session_id}", online, {"via": "events"}
        )
    )
    services = Services(
        settings=settings,
        db=db,
        bus=bus,
        hub=hub,
        status=status,
        directory=directory,
        auth=auth,
        totp=TotpService(db),
        shared=shared,
    )
    if shared is not None:
        services.components.append(shared)  # first in, so the last stopped: the others may use it until then
    # logouts an outage kept from the database are saved later; other nodes' logouts are read every 5 s
    services.components.append(RevocationSync(auth, revocation, read_others=bool(settings.redis_url)))
    services.first_admin_password = directory.ensure_first_admin(settings.admin_password)
    return services


def _web_dir(settings: Settings) -> Path | None:
    candidates = [Path(settings.web_dir)] if settings.web_dir else []
    candidates.append(Path(__file__).resolve().parents[2] / "web" / "dist")
    candidates.append(Path(__file__).resolve().parent / "web_dist")
    return next((c for c in candidates if (c / "index.html").is_file()), None)


_NOT_BUILT = """<!doctype html><meta charset=utf-8><title>callto</title>
<h1>callto is running</h1><p>The web app has not been built. Run <code>make run</code> from the source
tree (it builds <code>web/</code>), or use the API: <a href="/api/docs">/api/docs</a>.</p>"""


def create_app(services: Services) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await services.bus.start()
        started: list[Component] = []
        try:
            for component in services.components:
                await component.start()
                started.append(component)
            yield
        finally:
            for component in reversed(started):
                try:
                    await asyncio.wait_for(component.stop(), 10)
                except Exception:
                    log.exception("stopping %r failed", component)
            await services.bus.stop()

    app = FastAPI(
        title="callto",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    for name in ("settings", "db", "bus", "hub", "status", "directory", "auth", "totp"):
        setattr(app.state, name, getattr(services, name))
    app.state.services = services
    api_errors.install(app)
    app.include_router(directory_router)
    app.include_router(events_router)
    for name in FEATURES:
        _install_feature(name, app, services)

    @app.get("/api/v1/health", tags=["health"])
    def health() -> Response:
        checks: dict[str, Any] = {}
        healthy = True
        try:
            with services.db.engine.connect() as conn:
                conn.execute(text("select 1"))
            checks["database"] = "ok"
        except Exception as exc:
            healthy = False
            checks["database"] = f"failing: {exc.__class__.__name__}"
        checks["event_sessions"] = services.hub.session_count()
        if services.bus.redis_url:
            # Without Redis this node still serves its own sessions, but the other nodes miss its events.
            checks["redis"] = "ok" if services.bus.healthy else "failing: unreachable, retrying"
            healthy = healthy and services.bus.healthy
        body = {"status": "ok" if healthy else "degraded", "version": __version__, "checks": checks}
        return JSONResponse(body, status_code=200 if healthy else 503)

    _mount_web(app, services.settings)
    app.add_middleware(
        BodyLimit, default=services.settings.max_body_bytes, overrides={"/api/v1/phonebook/import": 64 << 20}
    )
    app.add_middleware(SecurityHeaders)  # outermost: every answer gets them, errors included
    return app


def _install_feature(name: str, app: FastAPI, services: Services) -> None:
    try:
        wiring = importlib.import_module(f"{name}.wiring")
    except ModuleNotFoundError as exc:
        if exc.name in (name, f"{name}.wiring"):
            return
        raise
    wiring.install(app, services)


def _mount_web(app: FastAPI, settings: Settings) -> None:
    web = _web_dir(settings)

    @app.get("/{path:path}", include_in_schema=False)
    def web_app(path: str, request: Request) -> Response:
        if path.startswith(("api/", "sip", "provisioning/")):
            return api_errors.error_response(404, "not-found", "there is nothing at this address")
        if web is None:
            return HTMLResponse(_NOT_BUILT)
        target = (web / path).resolve()
        if path and target.is_file() and target.is_relative_to(web.resolve()):
            return FileResponse(target)
        # Single-page app: every other path is a client-side route.
        return FileResponse(web / "index.html", headers={"Cache-Control": "no-cache"})
