"""Plugs the integrations into the server: API tokens into authentication, the route-scope context,
webhook deliveries on the event bus, the routes and the dial page (after click-to-call: it uses the dialer)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from callto.integrations.events import WebhookDispatcher
from callto.integrations.http import pages, router
from callto.integrations.scopes import RouteContext
from callto.integrations.screenpop import ScreenPopService
from callto.integrations.service import TokenService, WebhookService

if TYPE_CHECKING:
    from callto.app import Services


def install(app: FastAPI, services: Services) -> None:
    tokens = TokenService(services.db, services.directory)
    services.auth.api_tokens = tokens
    services.features["api_tokens"] = tokens
    app.state.api_tokens = tokens
    webhooks = WebhookService(services.db, services.directory)
    dispatcher = WebhookDispatcher(webhooks, shared=services.shared)  # with Redis: one delivery per deployment
    services.bus.subscribe(dispatcher.on_event)
    # with a webhook registered, call and presence events are built for every user, not only for users
    # with a session open (which is all the switch builds them for otherwise)
    services.hub.listen_server_side(lambda: bool(webhooks.active))
    services.components.append(dispatcher)
    services.features["webhooks"] = webhooks
    app.state.webhooks = webhooks
    app.state.webhook_dispatcher = dispatcher
    app.state.screen_pop = ScreenPopService(services.directory, services.features.get("dialer"))
    app.add_middleware(RouteContext)
    app.include_router(router)
    app.include_router(pages)
