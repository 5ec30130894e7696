"""The Firefox package (extension/dist/callto-firefox and its zip) built from the same sources as the
Chromium one: Mozilla's linter (web-ext lint, pinned in extension/tools) finds no error in it, its
manifest differs from Chromium's only where Firefox needs it, and its scripts are the Chromium
package's byte for byte (so the content script the Chromium tests run is the one Firefox runs).
Firefox itself is not installed here: nothing loads the package into it."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from integrations.test_extension import EXTENSION

DIST = EXTENSION / "dist"


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _zip_files(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in sorted(z.namelist()) if not n.endswith("/")}


def _manifest(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "manifest.json").read_text())
    return data


def test_mozilla_web_ext_lint_finds_no_error_in_the_firefox_package(extension_dir: Path) -> None:
    if shutil.which("npm") is None:
        pytest.skip("web-ext needs Node.js and npm (apt-get install nodejs npm)")
    proc = subprocess.run(["sh", str(EXTENSION / "lint.sh"), "--output", "json"], capture_output=True, text=True,
                          timeout=120)
    report = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert report["summary"]["errors"] == 0, json.dumps(report["errors"], indent=1)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert report["metadata"]["id"] == "extension@callto" and report["metadata"]["manifestVersion"] == 3
    print("web-ext lint:", report["summary"], [w["code"] for w in report["warnings"]])


def test_firefox_manifest_differs_from_chromium_only_in_background_scripts_and_gecko_settings(
    extension_dir: Path,
) -> None:
    chromium, firefox = _manifest(DIST / "callto"), _manifest(DIST / "callto-firefox")
    assert chromium["background"] == {"service_worker": "background.js"}
    assert "browser_specific_settings" not in chromium, "Chromium warns about keys it does not know"
    assert firefox["background"] == {"scripts": ["background.js"]}, "Firefox's Manifest V3 has no service worker"
    gecko = firefox["browser_specific_settings"]["gecko"]
    assert gecko["id"] == "extension@callto"
    assert gecko["data_collection_permissions"]["required"] == ["authenticationInfo", "personallyIdentifyingInfo"]
    same = {k: v for k, v in firefox.items() if k not in ("background", "browser_specific_settings")}
    assert same == {k: v for k, v in chromium.items() if k != "background"}


def test_both_packages_carry_the_same_scripts_pages_and_texts_byte_for_byte(extension_dir: Path) -> None:
    chromium, firefox = _files(DIST / "callto"), _files(DIST / "callto-firefox")
    assert chromium.keys() == firefox.keys()
    assert {"background.js", "content.js", "popup.js", "popup.html", "_locales/it/messages.json"} <= chromium.keys()
    assert "manifest.firefox.json" not in chromium
    different = [name for name in chromium if chromium[name] != firefox[name]]
    assert different == ["manifest.json"]
    assert _zip_files(DIST / "callto-extension.zip") == chromium, "the Chromium zip is the folder"
    assert _zip_files(DIST / "callto-firefox.zip") == firefox, "the Firefox zip is the folder"
