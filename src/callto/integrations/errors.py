"""Errors of the integrations: API tokens, their scopes, webhooks."""

from __future__ import annotations

from callto.errors import Forbidden, InvalidInput, NotFound


class TokenScopeMissing(Forbidden):
    """The API token is valid, but this route needs a scope it was not given."""

    error = "token-scope-missing"


class TokenNotAllowed(Forbidden):
    """This route is outside every scope (administration, token management, the event stream): API tokens
    never reach it, whatever their scopes; a signed-in session does."""

    error = "token-not-allowed"


class OnBehalfNotAllowed(Forbidden):
    """``on_behalf_of`` names another user, but the caller is not a service token."""

    error = "on-behalf-not-allowed"


class ApiTokenNotFound(NotFound):
    error = "token-not-found"


class WebhookNotFound(NotFound):
    error = "webhook-not-found"


class InvalidWebhook(InvalidInput):
    error = "invalid-webhook"


class InvalidTokenRequest(InvalidInput):
    error = "invalid-token-request"


class InvalidScreenPop(InvalidInput):
    error = "invalid-screen-pop"
