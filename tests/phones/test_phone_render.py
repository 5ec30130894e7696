"""Rendered phone configs parse in each vendor's format, carry the account, and cannot be injected."""

from __future__ import annotations

import configparser
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callto.phones.catalog import default_catalog
from callto.phones.errors import InvalidPhoneConfig, UnknownConfigFile
from callto.phones.render import deep_merge, render_config, resolve_variables

PASSWORD = "Sip-Secret-77"
ADMIN = "Web-Admin-55"


def phone_vars(mac: str, **extra: Any) -> dict[str, Any]:
    return deep_merge(
        {
            "mac": mac,
            "account": {
                "server": "127.0.0.1",
                "port": 5070,
                "transport": "tcp",
                "username": "201",
                "password": PASSWORD,
                "display_name": "Anna Rossi",
            },
            "admin_password": ADMIN,
            "time_zone": "Europe/Rome",
            "language": "it",
            "callto_address": "127.0.0.1",
            "phonebook_url": "https://127.0.0.1:8443/phonebook/tok/yealink.xml",
            "provisioning_url": "https://127.0.0.1:8443/provisioning/tok/",
            "line_keys": [{"type": "line", "label": "Linea"}, {"type": "blf", "value": "202", "label": "Bob"}],
        },
        extra,
    )


def parse_yealink(text: str) -> dict[str, str]:
    first, _, body = text.partition("\n")
    assert first == "#!version:1.0.0.1"
    parser = configparser.ConfigParser(delimiters=("=",), comment_prefixes=("#",), interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string("[cfg]\n" + body)
    return dict(parser["cfg"])


def parse_fanvil(text: str) -> dict[str, dict[str, str]]:
    first, _, body = text.partition("\n")
    assert first.startswith("<<VOIP CONFIG FILE>>Version:")
    lines = []
    for line in body.splitlines():
        if line.startswith("<") and line.endswith(">"):
            lines.append(f"[{line[1:-1]}]")
        else:
            lines.append(line)
    parser = configparser.ConfigParser(delimiters=(":",), comment_prefixes=("#",), interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string("\n".join(lines))
    return {name: dict(parser[name]) for name in parser.sections()}


def snom_settings(root: ET.Element) -> dict[str, str]:
    settings = root.find("phone-settings")
    assert settings is not None
    return {el.tag: (el.text or "") for el in settings}


def gigaset_params(root: ET.Element) -> dict[str, str]:
    return {el.attrib["name"]: el.attrib["value"] for el in root.iter("param")}


def grandstream_params(root: ET.Element) -> dict[str, str]:
    config = root.find("config")
    assert config is not None
    return {el.tag: (el.text or "") for el in config}


CASES = [
    ("yealink", "T54W", "805ec0a1b2c3", "805ec0a1b2c3.cfg"),
    ("snom", "D785", "000413a1b2c3", "snomD785-000413A1B2C3.htm"),
    ("snom", "D315", "000413a1b2c3", "000413a1b2c3.xml"),
    ("fanvil", "X4U", "0c383ea1b2c3", "0c383ea1b2c3.cfg"),
    ("gigaset", "Maxwell3", "7c2f80a1b2c3", "7c2f80a1b2c3.xml"),
    ("grandstream", "GRP2614", "c074ada1b2c3", "cfgc074ada1b2c3.xml"),
]


def account_of(vendor: str, content: str) -> dict[str, str]:
    """Read the SIP account back out of a rendered file, as a phone would."""
    if vendor == "yealink":
        cfg = parse_yealink(content)
        return {
            "server": cfg["account.1.sip_server.1.address"],
            "port": cfg["account.1.sip_server.1.port"],
            "user": cfg["account.1.user_name"],
            "password": cfg["account.1.password"],
            "name": cfg["account.1.display_name"],
        }
    if vendor == "fanvil":
        sip = parse_fanvil(content)["SIP CONFIG MODULE"]
        return {
            "server": sip["SIP1 Register Addr"],
            "port": sip["SIP1 Register Port"],
            "user": sip["SIP1 Phone Number"],
            "password": sip["SIP1 Register Pswd"],
            "name": sip["SIP1 Display Name"],
        }
    root = ET.fromstring(content)
    if vendor == "snom":
        s = snom_settings(root)
        host, _, rest = s["user_host"].partition(":")
        return {
            "server": host,
            "port": rest.split(";")[0],
            "user": s["user_name"],
            "password": s["user_pass"],
            "name": s["user_realname"],
        }
    if vendor == "gigaset":
        p = gigaset_params(root)
        return {
            "server": p["SIP.Account.0.RegistrationServer.Address"],
            "port": p["SIP.Account.0.RegistrationServer.Port"],
            "user": p["SIP.Account.0.Username"],
            "password": p["SIP.Account.0.AuthPassword"],
            "name": p["SIP.Account.0.DisplayName"],
        }
    p = grandstream_params(root)
    host, _, port = p["P47"].partition(":")
    return {"server": host, "port": port, "user": p["P35"], "password": p["P34"], "name": p["P3"]}


@pytest.mark.parametrize(("vendor", "model", "mac", "file_name"), CASES)
def test_rendered_config_parses_in_the_vendor_format_and_holds_the_account(
    vendor: str, model: str, mac: str, file_name: str
) -> None:
    rendered = render_config(vendor, model, file_name, phone_vars(mac))
    assert rendered.contains_secrets
    assert account_of(vendor, rendered.content) == {
        "server": "127.0.0.1",
        "port": "5070",
        "user": "201",
        "password": PASSWORD,
        "name": "Anna Rossi",
    }
    expected_type = "text/plain" if vendor in ("yealink", "fanvil") else "xml"
    assert expected_type in rendered.content_type


@pytest.mark.parametrize(("vendor", "model", "mac", "file_name"), CASES)
def test_hostile_display_name_is_escaped_in_xml_and_refused_in_cfg(
    vendor: str, model: str, mac: str, file_name: str
) -> None:
    hostile = 'Eve</user_realname><user_pass>x</user_pass> & "q" \'s <!--'
    rendered = render_config(vendor, model, file_name, phone_vars(mac, account={"display_name": hostile}))
    assert account_of(vendor, rendered.content)["name"] == hostile
    with pytest.raises(InvalidPhoneConfig) as caught:
        render_config(
            vendor,
            model,
            file_name,
            phone_vars(mac, account={"display_name": "Eve\naccount.1.password = owned"}),
        )
    assert caught.value.status == 422
    assert "account.display_name" in caught.value.details["fields"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"account": {"server": "evil.example\nx=1"}}, "account.server"),
        ({"account": {"server": "a b"}}, "account.server"),
        ({"account": {"username": "201@evil"}}, "account.username"),
        ({"account": {"port": 70000}}, "account.port"),
        ({"account": {"transport": "sctp"}}, "account.transport"),
        ({"admin_password": "pw\r\nstatic.x = 1"}, "admin_password"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"phonebook_url": "javascript:alert(1)"}, "phonebook_url"),
        ({"line_keys": [{"type": "blf", "value": "202\nx", "label": "B"}]}, "line_keys.0.value"),
        ({"action_uri_allow": ["10.0.0.0/8;rm"]}, "action_uri_allow"),
    ],
)
def test_unsafe_variables_are_refused_before_rendering(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidPhoneConfig) as caught:
        render_config("yealink", "T54W", "805ec0a1b2c3.cfg", phone_vars("805ec0a1b2c3", **change))
    assert field in caught.value.details["fields"], caught.value.details


@pytest.mark.parametrize(("vendor", "model", "mac", "file_name"), CASES)
def test_without_secrets_no_password_appears(vendor: str, model: str, mac: str, file_name: str) -> None:
    rendered = render_config(vendor, model, file_name, phone_vars(mac), include_secrets=False)
    assert not rendered.contains_secrets
    assert PASSWORD not in rendered.content
    assert ADMIN not in rendered.content
    assert account_of(vendor, rendered.content)["user"] == "201"


def test_common_files_never_carry_secrets() -> None:
    for vendor, model, file_name in [("yealink", "T54W", "y000000000044.cfg"), ("snom", "D785", "snomD785.htm")]:
        rendered = render_config(vendor, model, file_name, phone_vars("805ec0a1b2c3"))
        assert not rendered.contains_secrets
        assert PASSWORD not in rendered.content and ADMIN not in rendered.content


def test_click_to_call_settings_are_in_the_yealink_file() -> None:
    cfg = parse_yealink(render_config("yealink", "T54W", "805ec0a1b2c3.cfg", phone_vars("805ec0a1b2c3")).content)
    assert cfg["features.action_uri.enable"] == "1"
    assert cfg["features.action_uri_limit_ip"] == "127.0.0.1"
    assert cfg["features.show_action_uri_option"] == "0"
    assert cfg["static.security.user_password"] == f"admin:{ADMIN}"
    assert cfg["sip.trust_ctrl"] == "1"  # auto answer only from callto, its SIP server
    assert cfg["account.1.sip_server.1.transport_type"] == "1"  # tcp, from the vendor's map
    assert cfg["local_time.time_zone"] == "+1"
    assert cfg["lang.gui"] == "Italian"
    assert cfg["linekey.2.type"] == "16" and cfg["linekey.2.value"] == "202"
    assert cfg["remote_phonebook.data.1.url"].startswith("https://127.0.0.1:8443/phonebook/")


def test_grandstream_gets_posix_time_zone_and_call_info_auto_answer() -> None:
    root = ET.fromstring(
        render_config("grandstream", "GRP2614", "cfgc074ada1b2c3.xml", phone_vars("c074ada1b2c3")).content
    )
    p = grandstream_params(root)
    assert p["P64"] == "CET-1CEST,M3.5.0,M10.5.0/3"
    assert p["P298"] == "1" and p["P2"] == ADMIN
    assert root.findtext("mac") == "c074ada1b2c3"


def test_line_keys_are_capped_at_the_model_count() -> None:
    keys = [{"type": "blf", "value": str(300 + i), "label": f"K{i}"} for i in range(10)]
    cfg = parse_yealink(
        render_config("yealink", "T31G", "805ec0a1b2c3.cfg", phone_vars("805ec0a1b2c3", line_keys=keys)).content
    )
    assert "linekey.2.value" in cfg and "linekey.3.value" not in cfg


def test_variables_inherit_default_then_model_then_phone() -> None:
    catalog = default_catalog()
    vendor = catalog.vendor("yealink")
    model = vendor.model("T54W").model_copy(update={"variables": {"language": "de", "ntp_server": "ntp.model"}})
    settings = resolve_variables(vendor, model, {"mac": "805ec0a1b2c3", "account": {"server": "h", "username": "1"}})
    assert (settings.language, settings.ntp_server, settings.time_zone) == ("de", "ntp.model", "UTC")
    settings = resolve_variables(
        vendor, model, {"mac": "805ec0a1b2c3", "language": "it", "account": {"server": "h", "username": "1"}}
    )
    assert (settings.language, settings.ntp_server, settings.account.port) == ("it", "ntp.model", 5060)


def test_file_of_another_phone_or_vendor_is_refused() -> None:
    with pytest.raises(UnknownConfigFile):
        render_config("yealink", "T54W", "805ec0ffffff.cfg", phone_vars("805ec0a1b2c3"))
    with pytest.raises(UnknownConfigFile):
        render_config("yealink", "T54W", "cfg805ec0a1b2c3.xml", phone_vars("805ec0a1b2c3"))


@settings(max_examples=150, deadline=None)
@given(name=st.text(max_size=40), password=st.text(max_size=20))
def test_any_display_name_or_password_either_round_trips_or_is_refused(name: str, password: str) -> None:
    for vendor, model, mac, file_name in CASES:
        try:
            rendered = render_config(
                vendor, model, file_name, phone_vars(mac, account={"display_name": name, "password": password})
            )
        except InvalidPhoneConfig:
            continue
        account = account_of(vendor, rendered.content)
        # The values come back exactly (after the stripping that parsers do), and nothing else moved.
        if name.strip() == name:
            assert account["name"] == (name or "201"), (vendor, name)
        assert account["user"] == "201" and account["server"] == "127.0.0.1"
        if vendor in ("yealink", "fanvil") and password.strip() == password:
            assert account["password"] == password
