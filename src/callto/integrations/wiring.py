"""Builds the integrations: API tokens (handed to authentication), webhook deliveries on the event bus, the
screen pop (over the dialer), and mounts the route-scope context, the routes and the dial page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import FastAPI

from callto.dialer.service import DialerService
from callto.integrations.events import WebhookDispatcher
from callto.integrations.http import pages, router
from callto.integrations.scopes import RouteContext
from callto.integrations.screenpop import ScreenPopService
from callto.integrations.service import TokenService, WebhookService

if TYPE_CHECKING:
    from callto.app import Services


@dataclass(frozen=True)
class Integrations:
    api_tokens: TokenService
    webhooks: WebhookService
    dispatcher: WebhookDispatcher  # a component: started and stopped with the server
    screen_pop: ScreenPopService


def build(services: Services, dialer: DialerService | None) -> Integrations:
    tokens = services.api_tokens  # built with authentication, which checks them
    webhooks = WebhookService(services.db, services.directory)
    dispatcher = WebhookDispatcher(webhooks, shared=services.shared)  # with Redis: one delivery per deployment
    services.bus.subscribe(dispatcher.on_event)
    # with a webhook registered, call and presence events are built for every user, not only for users
    # with a session open (which is all the switch builds them for otherwise)
    services.hub.listen_server_side(lambda: bool(webhooks.active))
    return Integrations(tokens, webhooks, dispatcher, ScreenPopService(services.directory, dialer))


def mount(app: FastAPI) -> None:
    app.add_middleware(RouteContext)
    app.include_router(router)
    app.include_router(pages)
