"""The vendor catalog: data files load and validate, MACs normalise, OUIs suggest, requests match."""

from __future__ import annotations

import re

import pytest

from callto.phones.catalog import (
    ACTIONS,
    Catalog,
    default_catalog,
    format_mac,
    load_vendor,
    match_request,
    normalize_mac,
    suggest_vendor,
)
from callto.phones.errors import CatalogError, InvalidMac, UnknownModel, UnknownVendor

REQUIRED_VENDORS = {"yealink", "snom", "fanvil", "gigaset", "grandstream"}


def test_catalog_has_the_five_vendors_each_with_models_and_line_keys() -> None:
    catalog = default_catalog()
    assert {v.id for v in catalog.vendors} >= REQUIRED_VENDORS
    for vendor in catalog.vendors:
        assert vendor.models, vendor.id
        assert all(m.line_keys >= 0 and m.accounts >= 1 for m in vendor.models)
        assert vendor.files, vendor.id
        assert vendor.auto_answer.header in ("Alert-Info", "Call-Info")


def test_vendors_with_documented_contracts_have_every_click_to_call_action() -> None:
    catalog = default_catalog()
    assert {a for a in ACTIONS if catalog.vendor("yealink").action_template(a)} == set(ACTIONS)
    assert {a for a in ACTIONS if catalog.vendor("snom").action_template(a)} == set(ACTIONS)
    assert (catalog.vendor("grandstream").action_template("call") or "").startswith("/cgi-bin/api-make_call")
    # Gigaset documents no HTTP dial: it must say so (no action), not guess.
    assert catalog.vendor("gigaset").action_template("call") is None


@pytest.mark.parametrize(
    "text", ["00:15:65:AA:BB:CC", "00-15-65-aa-bb-cc", "001565aabbcc", "001565AABBCC", " 00:15:65:aa:bb:cc "]
)
def test_mac_in_every_accepted_form_normalises_to_lowercase_hex(text: str) -> None:
    assert normalize_mac(text) == "001565aabbcc"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "00:15:65:AA:BB",
        "00:15:65:AA:BB:CC:DD",
        "00:15-65:AA:BB:CC",
        "0015.65aa.bbcc",
        "00:15:65:AA:BB:GG",
        "001565aabbcc.cfg",
        "00 15 65 aa bb cc",
        "01:00:5e:00:00:01",
        "00:15:65:aa:bb\n:cc",
        "00:15:65:aa:bb:cc; rm -rf /",
    ],
)
def test_anything_else_is_invalid_mac(text: str) -> None:
    with pytest.raises(InvalidMac) as caught:
        normalize_mac(text)
    assert (caught.value.status, caught.value.error) == (422, "invalid-mac")
    assert "MAC" in caught.value.message or "multicast" in caught.value.message


def test_format_mac_variants() -> None:
    assert format_mac("001565aabbcc") == "00:15:65:aa:bb:cc"
    assert format_mac("001565aabbcc", "-", upper=True) == "00-15-65-AA-BB-CC"


@pytest.mark.parametrize(
    ("mac", "vendor"),
    [
        ("00:15:65:12:34:56", "yealink"),
        ("80:5E:C0:12:34:56", "yealink"),
        ("80:5E:0C:12:34:56", "yealink"),
        ("00:04:13:12:34:56", "snom"),
        ("00:04:13:E5:34:56", "gigaset"),
        ("7C:2F:80:12:34:56", "gigaset"),
        ("0C:38:3E:12:34:56", "fanvil"),
        ("00:0B:82:12:34:56", "grandstream"),
        ("C0:74:AD:12:34:56", "grandstream"),
        ("EC:74:D7:12:34:56", "grandstream"),
        ("AA:BB:CC:12:34:56", None),
    ],
)
def test_oui_suggests_the_vendor(mac: str, vendor: str | None) -> None:
    assert suggest_vendor(mac) == vendor


@pytest.mark.parametrize(
    ("file_name", "user_agent", "expected"),
    [
        ("001565aabbcc.cfg", "Yealink SIP-T54W 96.85.0.5 00:15:65:aa:bb:cc", ("yealink", "001565aabbcc")),
        ("y000000000044.cfg", "Yealink SIP-T54W 96.85.0.5 00:15:65:aa:bb:cc", ("yealink", "001565aabbcc")),
        ("y000000000044.cfg", None, None),
        ("snomD785-000413A1B2C3.htm", "Mozilla/4.0 (compatible; snomD785-SIP 10.1.54.13)", ("snom", "000413a1b2c3")),
        ("000413a1b2c3.xml", None, ("snom", "000413a1b2c3")),
        ("7c2f80a1b2c3.xml", None, ("gigaset", "7c2f80a1b2c3")),
        ("000413e5b2c3.xml", None, ("gigaset", "000413e5b2c3")),
        ("0c383ea1b2c3.cfg", "Fanvil X4U 2.12.1", ("fanvil", "0c383ea1b2c3")),
        (
            "cfgc074ada1b2c3.xml",
            "Grandstream Model HW GRP2614 SW 1.0.5.33 DevId c074ada1b2c3",
            ("grandstream", "c074ada1b2c3"),
        ),
        ("../etc/passwd", None, None),
        ("cfg.xml", None, None),
        ("index.html", None, None),
    ],
)
def test_request_matches_vendor_and_mac(
    file_name: str, user_agent: str | None, expected: tuple[str, str] | None
) -> None:
    assert match_request(file_name, user_agent) == expected


def test_ambiguous_cfg_name_is_resolved_by_the_user_agent() -> None:
    # <mac>.cfg is claimed by Yealink and Fanvil; a Yealink-prefixed MAC asked by a Fanvil UA is Fanvil.
    assert match_request("001565aabbcc.cfg", "Fanvil X4U 2.12.1") == ("fanvil", "001565aabbcc")
    assert match_request("001565aabbcc.cfg", None) == ("yealink", "001565aabbcc")
    assert match_request("aabbcc112233.cfg", None) is None


def test_user_agent_reports_model_and_firmware() -> None:
    info = default_catalog().parse_user_agent("Yealink SIP-T54W 96.85.0.5 80:5e:c0:d5:7d:72")
    assert info == {"vendor": "yealink", "model": "T54W", "firmware": "96.85.0.5", "mac": "805ec0d57d72"}


def test_unknown_vendor_and_model_are_typed_errors() -> None:
    catalog = default_catalog()
    with pytest.raises(UnknownVendor):
        catalog.vendor("polycom")
    with pytest.raises(UnknownModel) as caught:
        catalog.model("yealink", "T99")
    assert "T54W" in caught.value.message


def test_public_catalog_view_has_no_templates_or_regexes() -> None:
    data = default_catalog().to_json()
    text = repr(data)
    assert ".j2" not in text and "(?P<" not in text
    assert {v["id"] for v in data} >= REQUIRED_VENDORS


VALID = """
id = "acme"
name = "Acme"
oui = ["AABBCC"]
config_format = "cfg"
user_agent = '^Acme (?P<model>\\S+)'
[[files]]
pattern = '^(?P<mac>[0-9a-f]{12})\\.acme$'
template = "yealink-phone.cfg.j2"
content_type = "text/plain"
secrets = true
[http]
auth = "basic"
[actions]
call = "/dial?n={number}"
[auto_answer]
header = "Alert-Info"
value = "info=alert-autoanswer"
[[models]]
id = "A1"
name = "A1"
line_keys = 2
accounts = 1
"""


def test_a_new_vendor_is_data_only() -> None:
    vendor = load_vendor(VALID, "acme.toml")
    catalog = Catalog([*default_catalog().vendors, vendor])
    assert catalog.match_request("aabbcc001122.acme", None) == ("acme", "aabbcc001122")
    assert catalog.suggest_vendor("AA:BB:CC:00:11:22") is vendor


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (('call = "/dial?n={number}"', 'call = "/dial?n={secret}"'), "unknown placeholders"),
        (('call = "/dial?n={number}"', 'reboot = "/reboot"'), "unknown action"),
        (('oui = ["AABBCC"]', 'oui = ["XYZ"]'), "hex digits"),
        (("[0-9a-f]{12})", "[0-9a-f]{12}"), "does not compile"),
        (('auth = "basic"', 'auth = "cookie"'), "auth"),
        (("line_keys = 2", "line_keys = -1"), "line_keys"),
    ],
)
def test_malformed_vendor_file_is_a_catalog_error_naming_the_file(change: tuple[str, str], words: str) -> None:
    text = VALID.replace(*change)
    assert text != VALID
    with pytest.raises(CatalogError) as caught:
        load_vendor(text, "acme.toml")
    assert "acme.toml" in caught.value.message
    assert re.search(words, caught.value.message), caught.value.message
