"""Integrations: personal and service API tokens with scopes, signed webhooks, the dial link, screen pop."""
