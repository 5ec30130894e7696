"""Composition root: builds every service from the settings, wires them, and serves HTTP(S).

This is the only module that knows all the packages. :func:`build_services` makes the core (database, bus,
directory, authentication), :func:`build_features` every feature on top, in dependency order, each
receiving what it needs through its constructor. Routes find them on ``app.state`` through the typed
accessors of :mod:`callto.api.deps` (``services(request)``, ``features(request)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from sqlalchemy import text
from starlette.middleware import Middleware

from callto import __version__
from callto.api import errors as api_errors
from callto.api.headers import SecurityHeaders
from callto.api.lean import LeanLane
from callto.api.limits import BodyLimit
from callto.config import Settings
from callto.dialer import wiring as dialer_wiring
from callto.dialer.calls import CallBook
from callto.dialer.idempotency import IdempotencyCache
from callto.dialer.service import DialerService
from callto.directory.auth import AuthService
from callto.directory.http import router as directory_router
from callto.directory.online import DeviceStatus
from callto.directory.ratelimit import FailureWindow, LoginThrottle
from callto.directory.security import TokenSigner
from callto.directory.service import DirectoryService, TotpService
from callto.events import wiring as events_wiring
from callto.events.bus import EventBus
from callto.events.cluster import Cluster
from callto.events.http import router as events_router
from callto.events.hub import SessionHub
from callto.events.revocation import Revocation, RevocationSync
from callto.history import wiring as history_wiring
from callto.history.service import HistoryService
from callto.integrations import wiring as integrations_wiring
from callto.integrations.service import TokenService
from callto.integrations.wiring import Integrations
from callto.media import wiring as media_wiring
from callto.media.wiring import Media
from callto.phonebook import wiring as phonebook_wiring
from callto.phonebook.caller_names import CallerNames
from callto.phonebook.cards import CardService
from callto.phonebook.service import PhonebookService
from callto.presence import wiring as presence_wiring
from callto.presence.service import PresenceService
from callto.provisioning import wiring as provisioning_wiring
from callto.provisioning.service import ProvisioningService
from callto.sip.switch import SipSwitch
from callto.store import migrate
from callto.store.database import Database
from callto.store.private import check_private, private_dir
from callto.store.secretbox import SecretBox
from callto.store.shared import SharedState
from callto.switchboard import wiring as switchboard_wiring
from callto.switchboard.telephony import Telephony, audience
from callto.switchboard.wiring import Switchboard
from callto.trunks.service import TrunkService

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
    # the integrations' API tokens: authentication checks them before the JWT path
    api_tokens: TokenService
    # The core's long-lived parts (the shared state, the revocation sync; the server adds its watch).
    components: list[Component] = field(default_factory=list)
    first_admin_password: str | None = None
    # With Redis: the throttles' counts, idempotency answers and webhook claims of the whole deployment.
    shared: SharedState | None = None


@dataclass(frozen=True)
class Features:
    """Every feature's services, built once by :func:`build_features` in the order they depend on."""

    cluster: Cluster | None  # with Redis only
    media: Media
    phonebook: PhonebookService
    caller_names: CallerNames
    history: HistoryService
    cards: CardService
    presence: PresenceService
    calls: CallBook
    telephony: Telephony
    switchboard: Switchboard
    provisioning: ProvisioningService
    provisioning_guesses: FailureWindow
    dialer: DialerService
    idempotency: IdempotencyCache
    integrations: Integrations

    @property
    def switch(self) -> SipSwitch:
        return self.switchboard.switch

    @property
    def trunks(self) -> TrunkService:
        return self.switchboard.trunks

    def components(self) -> list[Component]:
        """The features' long-lived parts, in start order (stopped in reverse)."""
        found: list[Component] = [] if self.cluster is None else [self.cluster]
        # the caller names before the switch: its first call is named within the events' short wait
        return [*found, self.media, self.caller_names, self.switchboard.component, self.cards,
                self.integrations.dispatcher]

    def stopped_last(self) -> list[Component]:
        """Started before the core and stopped after everything: the history's write-behind, so the calls
        the switch hangs up as it stops are still recorded."""
        return [] if self.history.writer is None else [self.history.writer]


def build_features(services: Services) -> Features:
    """Each feature from the core and the features before it; nothing is patched in afterwards."""
    cluster = events_wiring.build(services)
    media = media_wiring.build(services.settings)
    phonebook = phonebook_wiring.build(services)
    caller_names = phonebook_wiring.build_caller_names(services, phonebook)
    history = history_wiring.build(services, phonebook)
    cards = phonebook_wiring.build_cards(services, phonebook, history.recent_with_number)
    presence = presence_wiring.build(services, cluster)
    calls = dialer_wiring.build_calls(services, cluster)
    telephony = Telephony(
        services.bus, listening=audience(services.bus, services.hub), calls=calls, caller_names=caller_names,
        cards=cards, presence=presence, history=history,
    )
    switchboard = switchboard_wiring.build(services, media=media, telephony=telephony)
    provisioning = provisioning_wiring.build(services, notifier=switchboard.switch, phonebook=phonebook)
    dialer = dialer_wiring.build(services, calls, originator=switchboard.switch, desk_phones=provisioning)
    return Features(
        cluster=cluster,
        media=media,
        phonebook=phonebook,
        caller_names=caller_names,
        history=history,
        cards=cards,
        presence=presence,
        calls=calls,
        telephony=telephony,
        switchboard=switchboard,
        provisioning=provisioning,
        provisioning_guesses=provisioning_wiring.build_guesses(services),
        dialer=dialer,
        idempotency=dialer_wiring.build_idempotency(services),
        integrations=integrations_wiring.build(services, dialer),
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
    api_tokens = TokenService(db, directory)
    auth = AuthService(
        directory, TokenSigner(str(key), settings.token_ttl_seconds), throttle=LoginThrottle(shared=shared),
        api_tokens=api_tokens,
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
        api_tokens=api_tokens,
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


def create_app(services: Services, features: Features | None = None) -> FastAPI:
    """The HTTP app over ``services`` and ``features`` (built here from ``services`` when not given)."""
    built = features if features is not None else build_features(services)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await services.bus.start()
        started: list[Component] = []
        try:
            for component in [*built.stopped_last(), *services.components, *built.components()]:
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
        # callto configures no OpenTelemetry; FastAPI's native telemetry would otherwise ask the global
        # tracer, meter and logger providers whether someone did, on every request (~2% of a click's CPU)
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    # the only two names on app.state, read through callto.api.deps.services / .features
    app.state.services = services
    app.state.features = built
    api_errors.install(app)
    app.include_router(directory_router)
    app.include_router(events_router)
    switchboard_wiring.mount(app)
    phonebook_wiring.mount(app)
    history_wiring.mount(app)
    presence_wiring.mount(app)
    provisioning_wiring.mount(app)
    dialer_wiring.mount(app)
    integrations_wiring.mount(app)

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
    # innermost of the app's own middleware (inside RouteContext, whose route the token check reads): the
    # lean routes' requests skip Starlette's and FastAPI's layers below (see callto.api.lean.LeanLane)
    app.user_middleware.append(Middleware(LeanLane, owner=app))
    app.add_middleware(
        BodyLimit, default=services.settings.max_body_bytes, overrides={"/api/v1/phonebook/import": 64 << 20}
    )
    app.add_middleware(SecurityHeaders)  # outermost: every answer gets them, errors included
    return app


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
