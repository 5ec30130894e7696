"""The browser fixtures of the web tests (Debian's Chromium through Playwright, the built web app served by a
real server), for the dial link and screen pop tests."""

from __future__ import annotations

from web.conftest import (  # noqa: F401  (fixtures)
    browser,
    chromium_path,
    playwright_driver,
    web_dist,
    web_server,
)
