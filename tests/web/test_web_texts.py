"""Every text the web CTI shows exists in English and Italian, and every key the code asks for exists.

Reads the TypeScript sources as text (no browser needed): dictionaries in web/src/i18n.ts, uses of
``t('...')`` / ``errorText`` ids and the enumerations whose values become keys.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "web" / "src"
ONLY_ENGLISH = {"app.name"}


# i18n.ts holds what every screen needs; i18n-admin.ts the admin screens' texts (loaded with them).
DICT_FILES = ("i18n.ts", "i18n-admin.ts")


def _dict_keys(name: str) -> set[str]:
    keys: set[str] = set()
    for file in DICT_FILES:
        text = (SRC / file).read_text()
        # `const en = {` defines the keys; `const it: Record<..., string> = {` must match them (tsc checks it).
        found = re.search(rf"^const {name}\b[^=\n]*= {{$", text, re.M)
        assert found, f"no {name} table in {file}"
        start = found.start()
        end = text.index("\n};", start)
        keys |= set(re.findall(r"^\s*'([^']+)':", text[start:end], re.M))
    return keys


def _sources() -> str:
    return "\n".join(p.read_text() for p in sorted(SRC.rglob("*.ts*")))


def test_english_and_italian_have_the_same_texts() -> None:
    en, it = _dict_keys("en"), _dict_keys("it")
    assert len(en) > 100
    assert sorted(en - it - ONLY_ENGLISH) == [], "missing in Italian"
    assert sorted(it - en) == [], "in Italian only"


def test_every_text_key_used_in_code_exists() -> None:
    en = _dict_keys("en")
    used = set(re.findall(r"\bt\(\s*'([^']+)'", _sources()))
    assert len(used) > 50
    assert sorted(used - en) == []


def test_every_key_built_from_a_value_exists() -> None:
    """Keys built at run time (`status.phone.${reg}`) exist for every value the code can produce."""
    en = _dict_keys("en")
    src = _sources()
    reg_states = re.search(r"export type RegState = ([^;]+);", src)
    assert reg_states
    for state in re.findall(r"'([^']+)'", reg_states.group(1)):
        assert f"status.phone.{state}" in en
    for state in ("idle", "connecting", "open", "reconnecting"):
        assert f"status.events.{state}" in en
    for kind in ("webphone", "link", "deskphone"):
        assert f"device.{kind}" in en
    for presence in ("available", "ringing", "busy", "dnd", "offline"):
        assert f"directory.presence.{presence}" in en
    for mic in ("granted", "denied", "prompt", "unknown"):
        assert f"diag.mic.{mic}" in en
    for field in ("country", "outbound_prefix", "international_prefix", "extension_pattern", "emergency"):
        assert f"dialplan.{field}" in en and f"dialplan.{field}.help" in en
    # Every error id the web phone raises has plain words and a fix.
    for err in set(re.findall(r"new PhoneError\('([^']+)'", src)):
        assert f"err.{err}" in en and f"fix.{err}" in en, err


def test_server_error_ids_from_the_contract_have_plain_words_and_a_fix() -> None:
    en = _dict_keys("en")
    for err in ("device-offline", "no-main-device", "number-not-permitted", "device-not-owned", "invalid-number",
                "idempotency-in-progress"):
        assert f"err.{err}" in en and f"fix.{err}" in en, err


def test_every_reason_the_number_parser_gives_has_words_in_both_languages() -> None:
    """An ``invalid-number`` is worded from its ``reason`` id on every screen (click, card, phonebook,
    import, admin forms): each reason the one parser can raise has a text in English and Italian."""
    text = (ROOT / "src" / "callto" / "dialer" / "numbers.py").read_text()
    reasons = set(re.findall(r'"([a-z]+(?:-[a-z]+)*)",\s*(?:raw|parsed\.raw|None)\b', text))
    reasons |= set(re.findall(r'\(\s*"([a-z]+(?:-[a-z]+)*)",\s*"[A-Z]', text))  # _PARSE_ERRORS, the fallback
    assert {"letters", "at-sign", "invalid-length", "not-a-phone-number", "too-few-digits"} <= reasons, reasons
    for lang in ("en", "it"):
        keys = _dict_keys(lang)
        assert sorted(r for r in reasons if f"numreason.{r}" not in keys) == [], lang
