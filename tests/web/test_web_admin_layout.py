"""The admin screens keep to the one layout of web/src/admin-ui.tsx: each page says only what is its own,
and the page shell, the error state of an action and the reading of an input are written once there.

No browser and no build: the page sources are read as text (the browser tests check how they behave).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGES = Path(__file__).resolve().parents[2] / "web" / "src" / "pages"
ADMIN_PAGES = sorted(PAGES.glob("Admin*.tsx"))

# What admin-ui.tsx owns, and how a page would be writing it again.
COPIES = {
    "its own page shell (use AdminPage)": re.compile(r'<section class="page'),
    "its own action error state (use useActions or useAdminList)": re.compile(r"useState<unknown>\(null\)"),
    "its own input reader (use val(e))": re.compile(r"\(e\.target as HTML\w+Element\)\.value"),
    "its own users lookup (use useUsers / userName / UserOptions)": re.compile(r"users\.find\("),
    "a hand-written API type (use Schema<'...'> from the generated schema)": re.compile(
        r"^\s*(export )?interface ", re.M
    ),
}


def test_there_are_admin_pages_to_check() -> None:
    assert len(ADMIN_PAGES) >= 7, ADMIN_PAGES


@pytest.mark.parametrize("page", ADMIN_PAGES, ids=lambda p: p.name)
def test_every_admin_page_is_built_on_the_shared_layout(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    imports = re.search(r"import \{[^}]*\bAdminPage\b[^}]*\} from '\.\./admin-ui'", text)
    assert imports, f"{page.name} imports no AdminPage"
    assert "<AdminPage" in text, f"{page.name} does not render AdminPage"
    found = [what for what, pattern in COPIES.items() if pattern.search(text)]
    assert not found, f"{page.name} writes again: {', '.join(found)}"
