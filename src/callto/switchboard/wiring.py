"""Plugs the SIP switch into the server: accounts from the directory, registrations in the database,
trunks from the admin API, SIP over WebSocket at ``/sip``, and its calls out to the rest of callto
(device online state, presence, history, click-to-call progress) through
:class:`~callto.switchboard.telephony.Telephony`.

:func:`build` makes the adapters and the trunks' service around the switch; :func:`build_switch` is the one
place that constructs :class:`~callto.sip.switch.SipSwitch`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, WebSocket

from callto.api.deps import features
from callto.dialer.dialplan import DialPlan
from callto.dialer.numbers import InvalidNumber, allowed, normalize
from callto.directory.events import DeviceRemoved, UserRemoved
from callto.events.bus import Event
from callto.media.wiring import Media
from callto.phones.catalog import default_catalog
from callto.security_log import security_event
from callto.shared_throttle import SharedFailureCounter
from callto.sip.ports import Binding, SipAccount
from callto.sip.recovery import DeadNodes
from callto.sip.registrar import DeviceOffline, DeviceOnline, RegistrarConfig, RegistrarEvent
from callto.sip.switch import SipSwitch, SwitchConfig
from callto.sip.transport import ConnectionLimits
from callto.sip.trunk import TrunkConfig
from callto.sip.ws import sip_over_websocket
from callto.switchboard.events import BindingsChanged
from callto.switchboard.store import (
    DatabaseActiveCalls,
    DatabaseBindingStore,
    DatabaseNodes,
    DirectoryCredentials,
    binding_from_row,
    binding_row,
)
from callto.switchboard.telephony import Telephony
from callto.tls import ensure_certificate
from callto.trunks.http import router as trunk_router
from callto.trunks.service import TrunkService

if TYPE_CHECKING:
    from callto.app import Services

log = logging.getLogger(__name__)
CACHE_SECONDS = 5.0
NODE_BEAT_INTERVAL = 1.0
FULL_READ_PUSHED = 10  # beats between full reads of the stored bindings when nodes push their changes
NODE_DEAD_AFTER = 4.0  # seconds without a beat: with the 1 s check, a dead node's calls end within ~6 s


class SipComponent:
    """Starts and stops the binding writer and the switch with the server."""

    def __init__(self, services: Services, bindings: DatabaseBindingStore, switch: SipSwitch,
                 trunks: TrunkService, credentials: DirectoryCredentials,
                 active_calls: DatabaseActiveCalls, nodes: DatabaseNodes) -> None:
        self.services = services
        self.active_calls = active_calls
        self.nodes = nodes
        self._watch: asyncio.Task[None] | None = None
        self.credentials = credentials
        self.bindings = bindings
        self.switch = switch
        self.trunks = trunks

    async def start(self) -> None:
        accounts = await asyncio.to_thread(self.credentials.preload)
        log.info("SIP accounts loaded: %d", accounts)
        await self.bindings.start()
        await self.active_calls.start()
        await self.switch.start()  # ends the calls a crash of this node left over (see SipSwitch)
        self._watch = asyncio.create_task(self._watch_nodes(), name="sip-node-watch")
        self.switch.set_trunks(_trunk_configs(self.trunks.configs()))
        s = self.services.settings
        log.info("SIP listening on %s:%s (UDP, TCP, WS at /sip), domain %s", s.bind, self.switch.port,
                 s.effective_sip_domain)

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.nodes.leave)
        await self.switch.stop()
        await self.active_calls.stop()
        await self.bindings.stop()


    async def _watch_nodes(self) -> None:
        """Beat every second; when another node stops beating, take its answered calls and end them
        (BYE to each leg, one history record each): a dead node's phones are not left in a call."""
        dead_nodes = DeadNodes(after=NODE_DEAD_AFTER)
        failing = False
        rounds = 0
        # Other nodes' bindings are read whole every beat; with Redis their writes are pushed here as they
        # happen, so the full read is only the safety net and comes every FULL_READ_PUSHED beats.
        full_read_every = FULL_READ_PUSHED if self.services.bus.redis_url else 1
        while True:
            try:
                await asyncio.to_thread(self.nodes.beat)
                beats = await asyncio.to_thread(self.nodes.beats)
                # other nodes: take in the bindings they accepted (alone, nothing to take in)
                if beats and rounds % full_read_every == 0:
                    stored = await self.bindings.load_settled()
                    self.switch.merge_bindings(stored)
                rounds += 1
                for node, beat in dead_nodes.observe(beats, time.monotonic()):
                    calls = await asyncio.to_thread(self.nodes.claim_calls, node)
                    if calls:
                        log.warning("node %s stopped; ending its %d call(s)", node, len(calls))
                        self.switch.end_calls(calls, "node-died")
                    await asyncio.to_thread(self.nodes.forget, node, beat)
                failing = False
            except Exception as exc:
                if not failing:  # once per outage, not once a second
                    log.warning("node heartbeat failed (%s); retrying", exc)
                failing = True
            await asyncio.sleep(NODE_BEAT_INTERVAL)


BINDINGS_EVENT = BindingsChanged.kind  # internal: for no client (no users) and no webhook (not a webhook type)


def _push_bindings_between_nodes(
    services: Services, bindings: DatabaseBindingStore, switch: SipSwitch, node: str
) -> None:
    """Each batch of registrations this node has written goes to the other nodes over the event bus, and
    theirs come here: a phone registered on one node is reachable from every node within the write-behind
    interval, not at the next full read of the table. Without Redis there is nobody to tell, and a lost
    message (Redis down) is made good by the full read in :meth:`SipComponent._watch_nodes`."""
    bus = services.bus
    if not bus.redis_url:
        return

    def flushed(batch: dict[tuple[str, str], Binding | None]) -> None:
        put = [binding_row(b) for b in batch.values() if b is not None]
        gone = [list(key) for key, b in batch.items() if b is None]
        bus.publish(Event.of(BindingsChanged(node, put, gone), users=frozenset()))

    def received(event: Event) -> None:
        if event.type != BINDINGS_EVENT or event.data.get("node") == node:
            return
        try:
            changed = [binding_from_row(row) for row in event.data.get("put", ())]
            gone = [(str(k[0]), str(k[1])) for k in event.data.get("gone", ())]
        except (TypeError, ValueError, KeyError, IndexError):
            log.warning("ignoring an unreadable registration message from node %s", event.data.get("node"))
            return
        switch.merge_binding_changes(changed, gone)

    bindings.on_flushed = flushed
    bus.subscribe(received)


def catalog_auto_answer(user_agent: str, domain: str) -> tuple[str, str] | None:
    """The auto-answer header of the vendor a User-Agent names in the phones catalog, if any."""
    catalog = default_catalog()
    vendor_id = catalog.parse_user_agent(user_agent).get("vendor")
    if vendor_id is None:
        return None
    return catalog.vendor(vendor_id).auto_answer.render(domain)


def _nonce_secret(services: Services) -> bytes:
    """The digest nonce key, kept in the database: every node of a deployment signs and checks nonces
    with the same key, so a phone challenged by one node may answer to another."""
    text = services.directory.setting_or_create("sip_nonce_key", lambda: secrets.token_urlsafe(48))
    return str(text).encode()


def _trunk_configs(rows: list[dict[str, Any]]) -> list[TrunkConfig]:
    return [
        TrunkConfig(
            id=str(r["id"]), name=r["name"], host=r["host"], port=r["port"], transport=r["transport"],
            username=r["username"], password=r["password"], register=r["register"], caller_id=r["caller_id"],
            dids=tuple(d["number"] for d in r["dids"]),
        )
        for r in rows
        if r.get("enabled", True)
    ]


class _Lookups:
    """Directory questions the switch asks on its hot path, answered from a short cache."""

    def __init__(self, services: Services, credentials: DirectoryCredentials) -> None:
        self.services = services
        self.credentials = credentials
        self._plan: tuple[float, DialPlan] | None = None
        self._extensions: dict[str, tuple[float, str | None]] = {}
        self._dids: dict[tuple[str, str], str] = {}

    def clear(self) -> None:
        self._extensions.clear()
        self._plan = None

    def plan(self) -> DialPlan:
        now = time.monotonic()
        if self._plan is None or self._plan[0] < now:
            stored = self.services.directory.get_setting("dialplan") or {}
            self._plan = (now + CACHE_SECONDS, DialPlan.from_settings(stored))
        return self._plan[1]

    def may_call(self, account: SipAccount, dialed: str) -> bool:
        try:
            number = normalize(dialed, self.plan())
        except InvalidNumber:
            return False
        return allowed(number.kind, self.credentials.outbound_class(account.username))

    def user_for_extension(self, extension: str) -> str | None:
        now = time.monotonic()
        hit = self._extensions.get(extension)
        if hit is not None and hit[0] > now:
            return hit[1]
        user = self.services.directory.user_by_extension(extension) if extension.isdigit() else None
        found = None if user is None else str(user.id)
        if len(self._extensions) > 10_000:
            self._extensions.clear()
        self._extensions[extension] = (now + CACHE_SECONDS, found)
        return found

    def set_dids(self, rows: list[dict[str, Any]]) -> None:
        self._dids = {
            (str(r["id"]), "".join(ch for ch in d["number"] if ch.isdigit())): str(d["user_id"])
            for r in rows for d in r["dids"]
        }

    def route_did(self, trunk_id: str, did: str) -> str | None:
        digits = "".join(ch for ch in did if ch.isdigit())
        return self._dids.get((str(trunk_id), digits))


def _tls_context(services: Services) -> ssl.SSLContext | None:
    """SIP over TLS uses the server's certificate (the operator's, or the generated self-signed one)."""
    if not services.settings.sip_tls_port:
        return None
    cert, key = ensure_certificate(services.settings.tls_dir)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@dataclass(frozen=True)
class Switchboard:
    """The switch and what plugs it in: built by :func:`build`, started and stopped by ``component``."""

    switch: SipSwitch
    trunks: TrunkService
    component: SipComponent


def _registration_handler(services: Services) -> Callable[[RegistrarEvent], None]:
    """A device's SIP registration becomes its online state (``device.online`` / ``device.offline``)."""
    status = services.status
    shared_bus = bool(services.bus.redis_url)

    def on_registration(event: RegistrarEvent) -> None:
        # A registration taken in from another node is that node's to announce when the bus reaches every
        # node (with Redis); without it, nobody else can tell this node's sessions, so this node does.
        announce = not (shared_bus and event.taken_in)
        if isinstance(event, DeviceOnline):
            transport, _, address = event.source.partition(":")
            host = address.rsplit(":", 1)[0].strip("[]")
            status.set(
                int(event.user_id), int(event.device_id), "sip", True,
                {"address": host, "source": event.source, "transport": transport,
                 "user_agent": event.user_agent, "contact": event.contact},
                announce=announce,
            )
        elif isinstance(event, DeviceOffline):
            status.set(int(event.user_id), int(event.device_id), "sip", False, announce=announce)

    return on_registration


def build_switch(
    services: Services,
    *,
    credentials: DirectoryCredentials,
    bindings: DatabaseBindingStore,
    active_calls: DatabaseActiveCalls,
    media: Media,
    telephony: Telephony,
    lookups: _Lookups,
) -> SipSwitch:
    """The one place the switch (and, inside it, the B2BUA) is constructed from the settings."""
    settings = services.settings
    switch = SipSwitch(
        SwitchConfig(
            domain=settings.effective_sip_domain,
            host=settings.bind,
            port=settings.sip_port,
            ring_timeout=float(settings.sip_ring_timeout),
            tls_context=_tls_context(services),
            tls_port=settings.sip_tls_port,
            ws_port=settings.http_port,
            wss_port=settings.https_port,
            connection_limits=ConnectionLimits(
                first_message_timeout=float(settings.sip_connection_first_message_timeout),
                idle_timeout=float(settings.sip_connection_idle_timeout),
                registered_idle_timeout=float(settings.sip_connection_registered_idle_timeout),
                max_per_address=settings.sip_connections_per_address,
                max_connections=settings.sip_connections_max,
            ),
            registrar=RegistrarConfig(
                realm=settings.effective_sip_domain,
                nonce_secret=_nonce_secret(services),
                algorithms=tuple(a.strip() for a in settings.sip_digest_algorithms.split(",") if a.strip()),
            ),
        ),
        credentials,
        bindings,
        media,
        on_registration_event=_registration_handler(services),
        on_call_event=telephony.on_call_event,
        on_call_record=telephony.on_call_record,
        on_call_answered=telephony.on_call_answered,
        may_call=lookups.may_call,
        user_for_extension=lookups.user_for_extension,
        route_did=lookups.route_did,
        vendor_auto_answer=catalog_auto_answer,
        active_calls=active_calls,
        node=settings.effective_node_id,
        security_event=security_event,
    )
    if services.shared is not None:
        # digest guesses counted for the whole deployment: a guesser cannot go round the nodes
        throttle = switch.server.throttle
        throttle.counter = SharedFailureCounter(services.shared, throttle.config.window)
    return switch


def build(services: Services, *, media: Media, telephony: Telephony) -> Switchboard:
    settings = services.settings
    credentials = DirectoryCredentials(services.directory)
    bindings = DatabaseBindingStore(services.db)
    active_calls = DatabaseActiveCalls(services.db)
    nodes = DatabaseNodes(services.db, settings.effective_node_id)
    lookups = _Lookups(services, credentials)
    switch = build_switch(
        services, credentials=credentials, bindings=bindings, active_calls=active_calls, media=media,
        telephony=telephony, lookups=lookups,
    )

    def trunks_changed(rows: list[dict[str, Any]]) -> None:
        lookups.set_dids(rows)
        switch.set_trunks(_trunk_configs(rows))

    trunks = TrunkService(services.db, services.directory, status=switch.trunk_summary, listeners=[trunks_changed])
    lookups.set_dids(trunks.configs())

    def directory_changed(event: Event) -> None:
        credentials.on_event(event)
        if event.type.startswith(("directory.", "device.")):
            lookups.clear()
        # a removed device (or every device of a removed user) loses its open SIP flows at once
        if event.type == DeviceRemoved.kind:
            switch.drop_device(str(event.data["device_id"]))
        elif event.type == UserRemoved.kind:
            user_id = str(event.data["user_id"])
            for device_id in {b.device_id for b in switch.server.registrar.bindings_for_user(user_id)}:
                switch.drop_device(device_id)

    services.bus.subscribe(directory_changed)
    _push_bindings_between_nodes(services, bindings, switch, settings.effective_node_id)
    component = SipComponent(services, bindings, switch, trunks, credentials, active_calls, nodes)
    return Switchboard(switch=switch, trunks=trunks, component=component)


ws_router = APIRouter()


@ws_router.websocket("/sip")
async def _sip_over_websocket(ws: WebSocket) -> None:
    await sip_over_websocket(ws, features(ws).switch)


def mount(app: FastAPI) -> None:
    app.include_router(trunk_router)
    app.include_router(ws_router)
