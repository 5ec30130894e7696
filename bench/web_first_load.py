"""Benchmark 6: page weight and cold first load of the web CTI's phonebook on localhost.

Owns the web benchmark of issue 6 ("first load of the phonebook on localhost measured in bench/"): a real
``callto serve`` with the built web app, a user whose main device is a desk phone (so the lazily loaded web
phone, JsSIP, is not fetched), ``--contacts`` shared contacts, and Debian's Chromium driven by Playwright.
Each round opens a new browser context (empty cache), already signed in (the token is put in
localStorage, as after a login), goes straight to ``/phonebook`` and stops the clock when the first
contact is shown. Prints p50 / max over the rounds, the navigation timing's DOMContentLoaded, and the bytes
of JavaScript and CSS downloaded. There is no reference to compare with; the figure to watch is its trend.

Usage: ``.venv/bin/python bench/web_first_load.py [--contacts 500] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import ROOT, BenchServer, Result, machine_line, percentile, user_token, workdir

CHROMIUM = Path("/usr/bin/chromium")
# The flags the project's browser tests use: no network beyond loopback, no first-run work.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run",
]


def _add_contacts(server: BenchServer, count: int) -> None:
    headers = {"Authorization": f"Bearer {server.admin_token()}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=15) as client:
        for i in range(count):
            r = client.post("/api/v1/phonebook", json={
                "name": f"Bench Contact {i:05d}", "company": "Bench", "shared": True,
                "numbers": [{"type": "work", "number": f"+39 0721 {100000 + i}"}],
            })
            r.raise_for_status()


def _measure(url: str, token: str, rounds: int) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    expires = (datetime.now(UTC) + timedelta(hours=12)).isoformat()
    out: list[dict[str, Any]] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for _ in range(rounds):
                ctx = browser.new_context(base_url=url)
                try:
                    ctx.add_init_script(
                        f"localStorage.setItem('callto.token', {json.dumps(token)});"
                        f"localStorage.setItem('callto.expires_at', {json.dumps(expires)});"
                    )
                    page = ctx.new_page()
                    sizes: dict[str, int] = {"js": 0, "css": 0, "js_files": 0}

                    def count(response: Any, sizes: dict[str, int] = sizes) -> None:
                        path = response.url.split("?")[0]
                        if path.endswith(".js"):
                            sizes["js"] += len(response.body())
                            sizes["js_files"] += 1
                        elif path.endswith(".css"):
                            sizes["css"] += len(response.body())

                    page.on("response", count)
                    started = time.monotonic()
                    page.goto("/phonebook")
                    page.wait_for_selector("[data-testid=contact]", timeout=30_000)
                    elapsed_ms = (time.monotonic() - started) * 1000
                    nav = json.loads(page.evaluate(
                        "JSON.stringify(performance.getEntriesByType('navigation')[0])"))
                    shown = page.locator("[data-testid=contact]").count()
                    out.append({"ms": elapsed_ms, "dcl_ms": float(nav["domContentLoadedEventEnd"]),
                                "shown": shown, **sizes})
                finally:
                    ctx.close()
        finally:
            browser.close()
    return out


def run(contacts: int = 500, rounds: int = 5) -> list[Result]:
    res = Result(
        "6. Web CTI first load (phonebook)",
        "cold first load of /phonebook in a new browser context (empty cache, signed in): from navigation to "
        "the first contact shown; DOMContentLoaded; JavaScript and CSS bytes downloaded",
        f"{contacts} shared contacts on the server, {rounds} cold loads one after the other, Debian Chromium "
        "(headless, Playwright) on the same machine as the server",
    )
    if not CHROMIUM.exists():
        res.verdict = "not measured: /usr/bin/chromium is missing (make test installs it)"
        return [res]
    if not (ROOT / "web" / "dist" / "index.html").exists():
        res.verdict = "not measured: the web app is not built (bash web/build.sh)"
        return [res]
    try:
        import playwright  # noqa: F401
    except ImportError:
        res.verdict = "not measured: the playwright Python package is missing (dev extras)"
        return [res]
    with workdir("web") as work:
        server = BenchServer(work)
        seed = server.seed(1)  # one user, a desk phone as main device: no web phone, no JsSIP download
        server.start()
        try:
            _add_contacts(server, contacts)
            loads = _measure(server.url, user_token(seed, seed.users[0].user_id), rounds)
        finally:
            server.stop()
    times = [x["ms"] for x in loads]
    dcl = [x["dcl_ms"] for x in loads]
    last = loads[-1]
    res.add("first contact shown p50 / max", f"{percentile(times, 50):.0f} / {max(times):.0f} ms")
    res.add("DOMContentLoaded p50", f"{percentile(dcl, 50):.0f} ms")
    res.add("downloaded", f"{last['js'] / 1024:.1f} KiB JavaScript in {last['js_files']} file(s), "
                          f"{last['css'] / 1024:.1f} KiB CSS (uncompressed)")
    res.add("contacts on the first page", str(last["shown"]))
    res.notes.append("per load (ms): " + ", ".join(f"{t:.0f}" for t in times))
    return [res]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(machine_line())
    for result in run(args.contacts, args.rounds):
        print(result.render(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
