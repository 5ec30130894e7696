"""The web app's compile-time contracts: the API types come from the server's own OpenAPI document, and
the text tables are typed, so a stale schema, a text missing in Italian, an unknown text key or a page
reading a field the server no longer sends fails the build (web/package.json: ``npm run build``).

No browser and no server: the schema is taken from the app in this process, and the type check runs
TypeScript on a copy of web/src.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
BIN = WEB / "node_modules" / ".bin"


def _schema_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("web_openapi", WEB / "scripts" / "openapi.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_openapi_document_is_the_apps() -> None:
    """web/openapi.json is what /api/v1/openapi.json serves; refresh: .venv/bin/python web/scripts/openapi.py."""
    script = _schema_script()
    committed = (WEB / "openapi.json").read_text(encoding="utf-8")
    live = script.render(script.app_schema())
    assert json.loads(committed)["paths"].keys() == json.loads(live)["paths"].keys()
    assert committed == live, "web/openapi.json is stale: run .venv/bin/python web/scripts/openapi.py"


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"web/node_modules is not installed (run web/build.sh): no {name}")
    return str(path)


def _drop_line(text: str, start_marker: str, line_start: str) -> str:
    """``text`` without the first line starting with ``line_start`` after ``start_marker``."""
    begin = text.index(start_marker)
    at = text.index(f"\n{line_start}", begin) + 1
    return text[:at] + text[text.index("\n", at) + 1 :]


def test_a_missing_italian_text_an_unknown_key_or_a_removed_api_field_fails_the_type_check(tmp_path: Path) -> None:
    tsc, generate = _tool("tsc"), _tool("openapi-typescript")
    copy = tmp_path / "web"
    copy.mkdir()
    shutil.copytree(WEB / "src", copy / "src")
    for name in ("tsconfig.json", "vite.config.ts"):
        shutil.copy(WEB / name, copy / name)
    (copy / "node_modules").symlink_to(WEB / "node_modules")

    # The server stops sending a field the users list shows.
    schema = json.loads((WEB / "openapi.json").read_text(encoding="utf-8"))
    del schema["components"]["schemas"]["AdminUserOut"]["properties"]["display_name"]
    (copy / "openapi.json").write_text(json.dumps(schema), encoding="utf-8")
    subprocess.run(
        [generate, "openapi.json", "--output", "src/api-schema.d.ts"],
        cwd=copy,
        check=True,
        capture_output=True,
        timeout=60,
    )
    # An Italian text goes missing from each table, and one admin key is misspelled where a page asks for it.
    i18n = copy / "src" / "i18n.ts"
    original = i18n.read_text()
    i18n.write_text(_drop_line(original, "const it:", "  'common.cancel':"))
    admin_texts = copy / "src" / "i18n-admin.ts"
    admin_original = admin_texts.read_text()
    admin_texts.write_text(_drop_line(admin_original, "const it:", "  'trunk.empty':"))
    admin = copy / "src" / "pages" / "AdminTrunks.tsx"
    admin.write_text(admin.read_text().replace("t('trunk.help')", "t('trunk.hlep')", 1))

    proc = subprocess.run([tsc, "--noEmit", "-p", "."], cwd=copy, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert re.search(r"src/i18n\.ts\(\d+,\d+\): error TS\d+: .*\bcommon\.cancel\b", out), out
    assert re.search(r"src/pages/AdminTrunks\.tsx\(\d+,\d+\): error TS\d+: .*\btrunk\.hlep\b", out), out
    assert re.search(r"src/i18n-admin\.ts\(\d+,\d+\): error TS\d+: .*\btrunk\.empty\b", out), out
    assert re.search(r"src/pages/Admin\.tsx\(\d+,\d+\): error TS\d+: .*\bdisplay_name\b", out), out
    # Nothing else in the copy is broken: every error is in a text table, a page showing a text that went
    # missing, or where the users are read (the admin screens' shared user type and the users list).
    files = set(re.findall(r"^(src/\S+?)\(\d+,\d+\): error", out, re.M))
    expected = {
        "src/i18n.ts",
        "src/i18n-admin.ts",
        "src/admin-ui.tsx",
        "src/pages/Admin.tsx",
        "src/pages/AdminTrunks.tsx",
    }
    assert files <= expected, out

    # English is the table the keys come from: a text gone from it only is an unknown key where a page
    # shows it, and an Italian text with no English one (in the admin screens' table, where the all-calls
    # texts live since only an admin sees them).
    i18n.write_text(original)
    admin_texts.write_text(_drop_line(admin_original, "const en =", "  'allcalls.export':"))
    proc = subprocess.run([tsc, "--noEmit", "-p", "."], cwd=copy, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert re.search(r"src/pages/AdminHistory\.tsx\(\d+,\d+\): error TS\d+: .*\ballcalls\.export\b", out), out
    assert re.search(r"src/i18n-admin\.ts\(\d+,\d+\): error TS\d+: .*\ballcalls\.export\b", out), out
