"""Page weight and first load: the JS the browser downloads before the phonebook shows, and how long a
cold first load of the phonebook (500 shared contacts on the server) takes on localhost.

Prints the measurement and writes it to test-output/web-first-load.json for bench/ to report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support.server import Api, ServerProcess

from .conftest import ROOT, login
from .test_web_ui import PASSWORD, make_user

pytestmark = pytest.mark.browser

CONTACTS = 500


def test_phonebook_first_load_is_quick_and_light(
    web_server: ServerProcess, admin: Api, browser: Any, new_page: Callable[..., Any]
) -> None:
    for i in range(CONTACTS):
        r = admin.post(
            "/api/v1/phonebook",
            json={
                "name": f"Perf Contact {i:04d}",
                "company": "Bench",
                "shared": True,
                "numbers": [{"type": "work", "number": f"+39 0721 {100000 + i}"}],
            },
        )
        assert r.status_code == 201, r.text
    user = make_user(admin)
    page = new_page()
    login(page, user["username"], PASSWORD)
    token = page.evaluate("localStorage.getItem('callto.token')")
    expires = page.evaluate("localStorage.getItem('callto.expires_at')")

    # A cold load: new context (empty cache), already logged in, straight to the phonebook.
    ctx = browser.new_context(base_url=web_server.url)
    try:
        ctx.add_init_script(
            f"localStorage.setItem('callto.token', {json.dumps(token)});"
            f"localStorage.setItem('callto.expires_at', {json.dumps(expires)});"
        )
        cold = ctx.new_page()
        js_bytes: list[int] = []
        js_names: list[str] = []

        def on_response(r: Any) -> None:
            if r.url.endswith(".js"):
                js_bytes.append(len(r.body()))
                js_names.append(r.url.rsplit("/", 1)[-1])

        cold.on("response", on_response)
        started = time.monotonic()
        cold.goto("/phonebook")
        cold.wait_for_selector("[data-testid=contact]")
        elapsed_ms = (time.monotonic() - started) * 1000
        nav = cold.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
        shown = cold.locator("[data-testid=contact]").count()
    finally:
        ctx.close()
    timing = json.loads(nav)
    result = {
        "contacts_on_server": CONTACTS,
        "contacts_shown": shown,
        "first_load_ms": round(elapsed_ms, 1),
        "dom_content_loaded_ms": round(timing["domContentLoadedEventEnd"], 1),
        "js_downloaded_bytes": sum(js_bytes),
        "js_files": len(js_bytes),
        "js_names": js_names,
    }
    out = ROOT / "test-output" / "web-first-load.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nphonebook first load on localhost: {result}")
    assert shown == 50, "the first page of results"
    # A user without a web phone downloads neither JsSIP nor the admin screens (both loaded lazily): the
    # entry chunk and the bundler's small runtime, nothing else.
    assert not [n for n in js_names if n.startswith(("JsSIP-", "Admin"))], result
    assert len([n for n in js_names if not n.startswith("rolldown-runtime-")]) == 1, result
    assert result["js_downloaded_bytes"] < 150_000, result
    assert elapsed_ms < 5000, result


def test_built_bundle_keeps_jssip_out_of_the_entry_chunk(web_dist: Path) -> None:
    entry = list((web_dist / "assets").glob("index-*.js"))
    lazy = list((web_dist / "assets").glob("JsSIP-*.js"))
    assert len(entry) == 1 and len(lazy) == 1
    assert entry[0].stat().st_size < 150_000
    assert b"SIP/2.0" in lazy[0].read_bytes()
    assert b"SIP/2.0" not in entry[0].read_bytes(), "JsSIP got bundled into the entry chunk"
