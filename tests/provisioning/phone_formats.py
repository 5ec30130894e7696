"""Reading desk phone config files the way each vendor's phone would, to check what a phone receives.

Yealink ``.cfg`` is ``key = value`` lines after a ``#!version`` header; Fanvil is ``<... MODULE>``
sections of ``Key :value`` lines; Snom, Gigaset and Grandstream are XML. Each reader returns the SIP
account it finds as ``{"username", "password", "server"}`` (password empty when the file has none).
"""

from __future__ import annotations

import configparser
import xml.etree.ElementTree as ET
from typing import Any


def _ini(body: str, delimiter: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(
        delimiters=(delimiter,), comment_prefixes=("#",), interpolation=None, strict=True
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(body)
    return parser


def yealink(text: str) -> dict[str, str]:
    first, _, body = text.partition("\n")
    assert first == "#!version:1.0.0.1", first
    return dict(_ini("[cfg]\n" + body, "=")["cfg"])


def fanvil(text: str) -> dict[str, dict[str, str]]:
    first, _, body = text.partition("\n")
    assert first.startswith("<<VOIP CONFIG FILE>>Version:"), first
    lines = []
    for line in body.splitlines():
        if line.startswith("<") and line.endswith(">"):
            lines.append(f"[{line[1:-1]}]")
        elif line.startswith("{#") or line.startswith("--"):
            continue
        else:
            lines.append(line)
    parser = _ini("\n".join(lines), ":")
    return {name: {k.strip(): v.strip() for k, v in parser[name].items()} for name in parser.sections()}


def account(vendor: str, text: str) -> dict[str, Any]:
    """The SIP account (and web password, when present) a phone of ``vendor`` reads from ``text``."""
    if vendor == "yealink":
        cfg = yealink(text)
        web = cfg.get("static.security.user_password", "")
        return {
            "username": cfg["account.1.user_name"],
            "auth": cfg["account.1.auth_name"],
            "password": cfg["account.1.password"],
            "server": cfg["account.1.sip_server.1.address"],
            "port": cfg["account.1.sip_server.1.port"],
            "admin_password": web.split(":", 1)[1] if web else "",
            "allow": cfg.get("features.action_uri_limit_ip", ""),
            "phonebook_url": cfg.get("remote_phonebook.data.1.url", ""),
            "provisioning_url": cfg.get("static.auto_provision.server.url", ""),
        }
    if vendor == "fanvil":
        sip = fanvil(text)["SIP CONFIG MODULE"]
        return {
            "username": sip["SIP1 Phone Number"],
            "auth": sip["SIP1 Register User"],
            "password": sip["SIP1 Register Pswd"],
            "server": sip["SIP1 Register Addr"],
            "port": sip["SIP1 Register Port"],
        }
    root = ET.fromstring(text.encode("utf-8"))
    if vendor == "snom":
        settings = root.find("phone-settings")
        assert settings is not None
        s = {el.tag: (el.text or "") for el in settings}
        host, _, rest = s["user_host"].partition(":")
        return {
            "username": s["user_name"],
            "auth": s["user_pname"],
            "password": s["user_pass"],
            "server": host,
            "port": rest.split(";")[0],
            "admin_password": s.get("http_pass", ""),
            "phonebook_url": s.get("dkey_directory", "").removeprefix("url "),
            "provisioning_url": s.get("setting_server", ""),
        }
    if vendor == "gigaset":
        assert root.tag == "provisioning"
        p = {el.get("name"): el.get("value") or "" for el in root.iter("param")}
        return {
            "username": p["SIP.Account.0.Username"],
            "auth": p["SIP.Account.0.AuthName"],
            "password": p["SIP.Account.0.AuthPassword"],
            "server": p["SIP.Account.0.RegistrationServer.Address"],
            "port": p["SIP.Account.0.RegistrationServer.Port"],
        }
    if vendor == "grandstream":
        assert root.tag == "gs_provision"
        config = root.find("config")
        assert config is not None
        p = {el.tag: (el.text or "") for el in config}
        host, _, port = p["P47"].partition(":")
        return {
            "username": p["P35"],
            "auth": p["P36"],
            "password": p["P34"],
            "server": host,
            "port": port,
            "admin_password": p.get("P2", ""),
            "provisioning_url": p.get("P237", ""),
        }
    raise AssertionError(f"no reader for {vendor}")
