"""Plugs the SIP switch into the server: accounts from the directory, registrations in the database,
trunks from the admin API, device online state and call events out to the rest of callto."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import FastAPI

from callto.sip.registrar import DeviceOffline, DeviceOnline, RegistrarConfig, RegistrarEvent
from callto.sip.server import SipServer
from callto.sip.store import DatabaseBindingStore, DirectoryCredentials
from callto.sip.trunk_admin import TrunkService
from callto.sip.trunk_admin import router as trunk_router

if TYPE_CHECKING:
    from callto.app import Services

log = logging.getLogger(__name__)


class SipComponent:
    """Starts and stops the binding writer and the switch with the server."""

    def __init__(self, services: Services, bindings: DatabaseBindingStore, server: SipServer) -> None:
        self.services = services
        self.bindings = bindings
        self.server = server

    async def start(self) -> None:
        await self.bindings.start()
        await self.server.start()
        s = self.services.settings
        log.info("SIP listening on %s:%s (UDP, TCP), domain %s", s.bind, self.server.port, s.effective_sip_domain)

    async def stop(self) -> None:
        await self.server.stop()
        await self.bindings.stop()


def install(app: FastAPI, services: Services) -> None:
    settings = services.settings
    credentials = DirectoryCredentials(services.directory)
    services.bus.subscribe(credentials.on_event)
    bindings = DatabaseBindingStore(services.db)
    status = services.status

    def on_registrar(event: RegistrarEvent) -> None:
        if isinstance(event, DeviceOnline):
            transport, _, address = event.source.partition(":")
            host = address.rsplit(":", 1)[0].strip("[]")
            status.set(
                int(event.user_id), int(event.device_id), "sip", True,
                {"address": host, "source": event.source, "transport": transport,
                 "user_agent": event.user_agent, "contact": event.contact},
            )
        elif isinstance(event, DeviceOffline):
            status.set(int(event.user_id), int(event.device_id), "sip", False)

    server = SipServer(
        settings.bind,
        settings.sip_port,
        settings.effective_sip_domain,
        credentials,
        bindings,
        on_registrar,
        registrar_config=RegistrarConfig(
            realm=settings.effective_sip_domain,
            algorithms=tuple(a.strip() for a in settings.sip_digest_algorithms.split(",") if a.strip()),
        ),
    )
    trunks = TrunkService(services.db, services.directory)
    services.features.update(sip=server, trunk_admin=trunks, sip_credentials=credentials)
    services.components.append(SipComponent(services, bindings, server))
    app.state.trunks = trunks
    app.state.sip = server
    app.include_router(trunk_router)


