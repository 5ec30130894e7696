"""Fixtures for the web CTI tests: the built app (web/dist), a real ``callto serve`` that serves it,
Debian's Chromium driven by Playwright for Python, and a logged-in page helper.

Chromium is started with the flags from docs/testing.md (fake media devices, no
background networking, loopback only); never ``playwright install``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from support.server import Api, ServerProcess, admin_client, start_server  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
DIST = WEB / "dist"
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM = "/usr/bin/chromium"

# Playwright passes its own --disable-features and only the last one counts: repeat its list with ours.
_PLAYWRIGHT_DISABLED_FEATURES = (
    "AvoidUnnecessaryBeforeUnloadCheckSync,DestroyProfileOnBrowserClose,HttpsUpgrades,"
    "HttpsFirstBalancedModeAutoEnable,LensOverlay,MediaRouter,PaintHolding,ThirdPartyStoragePartitioning,"
    "AvoidCorsURLLoaderRestartOnRedirect,TcpPortRandomizationWin,OptimizationHints,NetworkTimeServiceQuerying,"
    "AimEnabled,PreconnectToSearch,msForceBrowserSignIn,msEdgeUpdateLaunchServicesPreferredVersion,"
    "SkipListAccountsWithoutGaiaCookies"
)

BASE_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    f"--disable-features={_PLAYWRIGHT_DISABLED_FEATURES},WebRtcHideLocalIpsWithMdns",
]

FAKE_MEDIA_FLAGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def _sources_newer_than_dist() -> bool:
    index = DIST / "index.html"
    if not index.is_file():
        return True
    built = index.stat().st_mtime
    inputs = [WEB / "index.html", WEB / "package.json", WEB / "package-lock.json", WEB / "vite.config.ts"]
    inputs.append(WEB / "openapi.json")  # the API types are generated from it on every build
    inputs += [p for p in (WEB / "src").rglob("*") if p.is_file()]
    return any(p.stat().st_mtime > built for p in inputs if p.exists())


@pytest.fixture(scope="session")
def web_dist() -> Path:
    """web/dist, built by web/build.sh when missing or older than its sources."""
    if _sources_newer_than_dist():
        if shutil.which("npm") is None:
            pytest.skip("web tests need Node.js and npm to build web/ (apt-get install nodejs npm)")
        proc = subprocess.run(["sh", str(WEB / "build.sh")], cwd=WEB, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            pytest.fail(f"web/build.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return DIST


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"web tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory, web_dist: Path) -> Iterator[ServerProcess]:
    """One real server (SQLite) serving web/dist for a module's tests; each test makes its own users."""
    tmp = tmp_path_factory.mktemp("webdata")
    proc = start_server(tmp, f"sqlite:///{tmp / 'callto.db'}", CALLTO_WEB_DIR=str(web_dist))
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def admin(web_server: ServerProcess) -> Iterator[Api]:
    with admin_client(web_server.url) as api:
        yield api
        # The language and alerts are saved in the profile: a test that switched the admin's screen to
        # Italian must not leave the next test's admin in Italian.
        api.patch("/api/v1/me/preferences", json={"language": None, "ringtone": None, "incoming_popup": None})


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


def launch(pw: Any, extra: list[str] | None = None, fake_media: bool = True) -> Any:
    args = BASE_FLAGS + (FAKE_MEDIA_FLAGS if fake_media else []) + (extra or [])
    return pw.chromium.launch(executable_path=CHROMIUM, args=args, timeout=30_000)


@pytest.fixture(scope="module")
def browser(playwright_driver: Any, chromium_path: str) -> Iterator[Any]:
    b = launch(playwright_driver)
    try:
        yield b
    finally:
        b.close()


@dataclass
class PageErrors:
    """JavaScript errors seen on a page; a test fails on any (a broken screen should not pass)."""

    errors: list[str]


@pytest.fixture
def new_page(browser: Any, web_server: ServerProcess) -> Iterator[Callable[..., Any]]:
    """``new_page(locale="en-US", viewport=...)`` -> a page in a fresh context (own localStorage)."""
    contexts: list[Any] = []
    errors: list[str] = []

    def make(locale: str = "en-US", viewport: dict[str, int] | None = None, **kw: Any) -> Any:
        ctx = browser.new_context(
            base_url=web_server.url,
            locale=locale,
            viewport=viewport or {"width": 1280, "height": 800},
            **kw,
        )
        ctx.set_default_timeout(10_000)
        contexts.append(ctx)
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
        return page

    yield make
    for ctx in contexts:
        ctx.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def login(page: Any, username: str, password: str) -> None:
    page.goto("/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("[data-testid=login-submit]")
    page.wait_for_selector("[data-testid=logout]")


def wait_js(page: Any, expression: str, timeout: float = 10.0) -> Any:
    """Poll ``expression`` in the page until it is truthy; returns its value.

    ``page.wait_for_function`` evaluates its predicate with ``eval`` inside the page, which the app's
    Content-Security-Policy (no ``unsafe-eval``) forbids; ``page.evaluate`` goes through the DevTools
    protocol and is not subject to it.
    """
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout:g} s: {expression}")
        page.wait_for_timeout(100)


def shot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def sip_endpoint_reason(server: ServerProcess) -> str | None:
    """None when the server accepts SIP over WebSocket at /sip, else why the web phone cannot register."""
    import websockets.sync.client as wsc

    try:
        with wsc.connect(f"{server.ws_url}/sip", subprotocols=["sip"], open_timeout=3) as ws:  # type: ignore[list-item]
            ws.close()
        return None
    except Exception as exc:
        return f"the switch's SIP WebSocket endpoint /sip is not there yet ({exc.__class__.__name__}: {exc})"


def calls_endpoint_reason(server: ServerProcess) -> str | None:
    import httpx

    spec = httpx.get(f"{server.url}/api/v1/openapi.json", timeout=5).json()
    if "/api/v1/calls" not in spec.get("paths", {}):
        return "the server has no click-to-call endpoint POST /api/v1/calls yet (issue 4)"
    return None


os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
