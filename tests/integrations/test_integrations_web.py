"""The integrations screens of the web CTI in Debian's Chromium: a user creates a personal token (the
secret shown once), sees its last use and revokes it; an administrator registers a webhook and sends it
a test event, which the delivery log shows as delivered."""

from __future__ import annotations

from typing import Any

import pytest

from integrations.receiver import Receiver, verify
from support.server import Api, ServerProcess
from web.conftest import login, shot

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


def test_user_creates_uses_and_revokes_a_token_in_the_web_cti(web_server: ServerProcess, browser: Any) -> None:
    admin = Api(web_server.url).login("admin", "admin-secret-1")
    user = admin.create_user(display_name="Ada")
    ctx = browser.new_context(base_url=web_server.url, locale="it-IT")
    ctx.set_default_timeout(10_000)
    try:
        page = ctx.new_page()
        login(page, user["username"], "password-123")
        page.click("[data-testid=nav-integrations]")
        page.wait_for_selector("[data-testid=my-tokens]")
        assert page.inner_text("h1") == "Integrazioni"
        page.fill("[data-testid=token-name]", "crm")
        page.click("[data-testid=token-create]")
        secret = page.inner_text("[data-testid=token-secret] code")
        assert secret.startswith("ct_pat_")
        row = page.wait_for_selector("[data-testid=token-row]")
        assert "crm" in row.inner_text() and "non ancora usato" in row.inner_text()
        shot(page, "90-integrations-token-created")
        token = Api(web_server.url, secret)
        assert token.get("/api/v1/history").status_code == 403  # the default scope is calls:write only
        assert token.get("/api/v1/calls/no-such-call").status_code == 404  # inside its scope
        page.reload()
        row = page.wait_for_selector("[data-testid=token-row]")
        assert "non ancora usato" not in row.inner_text()
        assert page.query_selector("[data-testid=token-secret]") is None, "the secret is shown once"
        page.click("[data-testid=token-revoke]")
        page.wait_for_selector("[data-testid=token-row]", state="detached")
        assert token.get("/api/v1/integrations/token").status_code == 401
    finally:
        ctx.close()


def test_admin_registers_a_webhook_and_sends_a_test_event(web_server: ServerProcess, browser: Any) -> None:
    receiver = Receiver().start()
    ctx = browser.new_context(base_url=web_server.url, locale="en-US")
    ctx.set_default_timeout(10_000)
    try:
        page = ctx.new_page()
        login(page, "admin", "admin-secret-1")
        page.click("[data-testid=nav-admin-integrations]")
        page.fill("[data-testid=webhook-url]", receiver.url)
        page.click("[data-testid=webhook-create]")
        secret = page.inner_text("[data-testid=webhook-secret] code")
        page.wait_for_selector("[data-testid=webhook-row]")
        page.click("[data-testid=webhook-test] >> nth=-1")
        page.wait_for_selector("[data-testid=delivery-row][data-status=delivered]")
        got = receiver.wait_for("webhook.test")
        assert verify(secret, got.headers["x-callto-signature"], got.body)
        shot(page, "91-admin-integrations-webhook")
    finally:
        ctx.close()
        receiver.stop()
