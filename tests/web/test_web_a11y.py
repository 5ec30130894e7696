"""WCAG 2.1 AA in the web CTI: axe-core (npm ``axe-core``, from web/node_modules) runs on every screen,
in English and Italian, at desktop and phone widths, and finds no serious or critical violation.

axe is put into the page through the DevTools protocol (``page.evaluate``): the app's
Content-Security-Policy rightly refuses inline scripts, so a ``<script>`` tag could not carry it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from support.server import ADMIN_PASSWORD, Api

from .conftest import WEB, login, wait_js

pytestmark = pytest.mark.browser

AXE = WEB / "node_modules" / "axe-core" / "axe.min.js"
SCREENS = [
    "/phonebook", "/history", "/directory", "/card", "/settings", "/diagnostics", "/integrations",
    "/admin/users", "/admin/phones", "/admin/trunks", "/admin/dialplan", "/admin/click-to-call",
    "/admin/card-sources", "/admin/calls", "/admin/integrations",
]
WIDTHS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


def _axe(page: Any) -> list[dict[str, Any]]:
    """Serious and critical violations on the page as it is now (WCAG 2.0/2.1 A and AA rules)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    found = page.evaluate(
        """async () => {
  const tags = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'];
  const r = await axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] });
  return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 3).map((n) => ({ target: n.target.join(' '), summary: n.failureSummary })),
  }));
}"""
    )
    return list(found)


def _go(page: Any, path: str) -> None:
    # Client-side navigation (the app's router listens to popstate): no reload per screen.
    page.evaluate(f"history.pushState(null, '', {json.dumps(path)}); dispatchEvent(new PopStateEvent('popstate'))")
    page.wait_for_selector("main.content h1")
    wait_js(page, "!/Loading|Caricamento/.test(document.querySelector('main.content')?.innerText ?? '')")


@pytest.mark.timeout(150)
def test_every_screen_in_both_languages_and_widths_has_no_serious_accessibility_violation(
    admin: Api, new_page: Callable[..., Any]
) -> None:
    if not AXE.is_file():
        print(f"axe-core is not installed in {AXE.parent} (npm install in web/)")
        pytest.skip(f"axe-core is not installed in {AXE.parent} (npm install in web/)")
    problems: dict[str, list[dict[str, Any]]] = {}
    for lang, locale in (("en", "en-US"), ("it", "it-IT")):
        for width, viewport in WIDTHS.items():
            page = new_page(locale=locale, viewport=viewport)
            page.goto("/login")
            page.wait_for_selector("input[name=username]")
            if not problems and lang == "en" and width == "desktop":
                # axe does see a violation when there is one (an unlabeled input), so its silence counts.
                page.evaluate("document.querySelector('form').appendChild(document.createElement('input')).id = 'bad'")
                assert any(v["id"] == "label" for v in _axe(page)), "axe-core found no violation where one is"
                page.evaluate("document.getElementById('bad').remove()")
            if found := _axe(page):
                problems[f"{lang} {width} /login"] = found
            login(page, "admin", ADMIN_PASSWORD)
            for path in SCREENS:
                _go(page, path)
                if found := _axe(page):
                    problems[f"{lang} {width} {path}"] = found
            page.context.close()
    assert not problems, json.dumps(problems, indent=1)[:6000]
