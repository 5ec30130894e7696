"""Link speaks Italian and English: both tables hold the same keys and parameters, every key the code
uses exists, texts shared with the web CTI have the web's very wording, and the language follows the
system unless the user picked one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from callto.link import i18n

ROOT = Path(__file__).resolve().parents[2]
LINK_SOURCES = sorted((ROOT / "src" / "callto" / "link").glob("*.py"))
WEB_I18N = ROOT / "web" / "src" / "i18n.ts"
_PARAM = re.compile(r"\{(\w+)\}")


def _web_tables() -> dict[str, dict[str, str]]:
    """The web CTI's en/it tables, read from web/src/i18n.ts (``'key': 'text',`` lines)."""
    text = WEB_I18N.read_text(encoding="utf-8")
    tables: dict[str, dict[str, str]] = {}
    for lang in ("en", "it"):
        # ``const en = {``, ``const it: Record<...> = {``: whatever type annotation the table has
        found = re.search(rf"^const {lang}\b[^=\n]*= \{{$", text, re.M)
        assert found, f"no '{lang}' table in {WEB_I18N}"
        start = found.start()
        end = re.compile(r"^\}", re.M).search(text, start)  # ``};`` or ``} as const;``
        assert end, f"the '{lang}' table in {WEB_I18N} does not end"
        body = text[start : end.start()]
        entries = re.findall(r"^\s*'([^']+)':\s*(?:'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"),?\s*$", body, re.M)
        tables[lang] = {key: (single or double).replace("\\'", "'") for key, single, double in entries}
    return tables


def test_every_key_exists_in_both_languages_with_the_same_parameters() -> None:
    assert set(i18n.EN) == set(i18n.IT), {
        "missing in Italian": sorted(set(i18n.EN) - set(i18n.IT)),
        "missing in English": sorted(set(i18n.IT) - set(i18n.EN)),
    }
    for key, english in i18n.EN.items():
        italian = i18n.IT[key]
        assert english.strip() and italian.strip(), key
        assert set(_PARAM.findall(english)) == set(_PARAM.findall(italian)), key


def test_every_text_the_code_asks_for_exists() -> None:
    used: set[str] = set()
    for source in LINK_SOURCES:
        text = source.read_text(encoding="utf-8")
        used |= set(re.findall(r"\btr\(\s*[\"']([\w.]+)[\"']", text))
        used |= set(re.findall(r"[\"']text[\"']:\s*[\"']([\w.]+)[\"']", text))
        used |= set(re.findall(r"\bkey(?:,\s*message)?\s*=\s*[\"'](net\.\w+)[\"']", text))
        used |= set(re.findall(r"key = [\"'](net\.\w+)[\"']", text))
    assert used, "the scan found no tr() call: the pattern is out of date"
    assert {"net.notHttps", "net.refused", "link.keyringFailed", "login.submit"} <= used
    assert not used - set(i18n.EN), sorted(used - set(i18n.EN))


def test_texts_shared_with_the_web_have_the_webs_wording() -> None:
    if not WEB_I18N.exists():
        pytest.skip("web/src/i18n.ts is not in this checkout")
    web = _web_tables()
    shared = set(i18n.EN) & set(web["en"])
    assert {"login.username", "login.submit", "settings.mainDevice", "settings.ringtone", "device.deskphone"} <= shared
    for key in sorted(shared):
        assert (i18n.EN[key], i18n.IT[key]) == (web["en"][key], web["it"][key]), key


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LANGUAGE": "it:en"}, "it"),
        ({"LANG": "it_IT.UTF-8"}, "it"),
        ({"LC_ALL": "en_GB.UTF-8", "LANG": "it_IT.UTF-8"}, "en"),
        ({"LANG": "de_DE.UTF-8"}, "en"),
    ],
)
def test_language_follows_the_system_unless_chosen(
    env: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        assert i18n.set_language("auto") == expected
        assert i18n.set_language("it") == "it" and i18n.tr("login.submit") == "Accedi"
        assert i18n.set_language("en") == "en" and i18n.tr("login.submit") == "Sign in"
    finally:
        i18n.set_language("en")


def test_test_connection_speaks_italian_when_link_does() -> None:
    import asyncio

    from callto.link.connection_test import Status, run_checks
    from link.conftest import tcp_port_closed

    port = tcp_port_closed()
    i18n.set_language("it")
    try:
        checks = asyncio.run(run_checks(f"http://127.0.0.1:{port}", "x"))
    finally:
        i18n.set_language("en")
    first = checks[0]
    assert (first.title, first.status) == ("Server raggiungibile", Status.FAIL)
    assert first.message.startswith(f"Nessuno risponde su 127.0.0.1:{port}.") and "Controlla" in first.fix
    assert [c.message for c in checks[1:]] == ["Saltato: il server non è raggiungibile."] * (len(checks) - 1)
    english = {v for k, v in i18n.EN.items() if v != i18n.IT[k]}
    assert not [t for c in checks for t in (c.title, c.message, c.fix) if t in english]
