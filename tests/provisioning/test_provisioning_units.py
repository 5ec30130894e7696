"""Provisioning pieces in-process on a real SQLite database: what click-to-call learns of a desk phone,
the directory feed's formats and sources, and reading registration addresses."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callto.app import Services, build_services
from callto.config import Settings
from callto.directory.schemas import UserCreate
from callto.phonebook.schemas import ContactIn
from callto.phonebook.service import PhonebookService
from callto.provisioning.feed import MAX_ENTRIES, Entry, render_feed
from callto.provisioning.schemas import PhoneCreate
from callto.provisioning.service import FetchRequest, ProvisioningService, host_of


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    built = build_services(Settings(data_dir=tmp_path, admin_password="admin-secret-1"))
    try:
        yield built
    finally:
        built.db.dispose()


def _user(services: Services, name: str, extension: str | None = None) -> int:
    user = services.directory.create_user(
        UserCreate(username=name, display_name=name.title(), password="password-123", extension=extension)
    )
    return user.id


def _service(services: Services, **kw: Any) -> ProvisioningService:
    return ProvisioningService(services.db, services.directory, services.status, services.settings, **kw)


@pytest.mark.parametrize(
    ("address", "host"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("192.0.2.7:5060", "192.0.2.7"),
        ("[2001:db8::1]:5060", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("udp:192.0.2.7:5062", "192.0.2.7"),
        ("phone.lan:5060", "phone.lan"),
        ("", None),
    ],
)
def test_registration_address_gives_the_phones_host(address: str, host: str | None) -> None:
    assert host_of(address) == host


def test_click_to_call_target_prefers_the_registration_address_then_the_last_fetch(services: Services) -> None:
    service = _service(services)
    user_id = _user(services, "anna")
    phone = service.create(PhoneCreate(mac="80:5E:C0:00:00:01", model="T54W", user_id=user_id))
    assert phone.device_id is not None
    nothing = service.desk_phone(phone.device_id)
    assert nothing is not None and nothing.target is None, "no address known yet"

    service.serve_token(
        phone.token, "805ec0000001.cfg",
        FetchRequest(ip="198.51.100.20", user_agent="Yealink SIP-T54W 96.85.0.5", base_url="http://pbx:8080",
                     host="pbx", local_ip="198.51.100.1"),
    )
    fetched = service.desk_phone(phone.device_id)
    assert fetched is not None and fetched.target is not None
    assert (fetched.target.host, fetched.target.port, fetched.target.scheme) == ("198.51.100.20", 80, "http")
    assert fetched.target.username == "admin" and fetched.target.password == service.admin_password()

    services.status.set(user_id, phone.device_id, "sip", True, {"address": "192.0.2.7", "user_agent": "x"})
    registered = service.desk_phone(phone.device_id)
    assert registered is not None and registered.target is not None
    assert registered.target.host == "192.0.2.7"
    assert registered.strategies is None
    assert service.desk_phone(phone.device_id + 1000) is None, "not a provisioned phone: the dialer decides"


def test_per_phone_web_port_scheme_and_strategies_reach_the_dialer(services: Services) -> None:
    service = _service(services)
    user_id = _user(services, "bruno")
    phone = service.create(
        PhoneCreate(mac="00:04:13:11:22:33", model="D785", user_id=user_id, http_scheme="https",
                    strategies=["lan_relay", "originate"])
    )
    assert phone.vendor == "snom" and phone.device_id is not None
    services.status.set(user_id, phone.device_id, "sip", True, {"address": "10.0.0.5"})
    desk = service.desk_phone(phone.device_id)
    assert desk is not None and desk.target is not None
    assert (desk.target.scheme, desk.target.port, desk.target.vendor) == ("https", 443, "snom")
    assert desk.strategies == ("lan_relay", "originate")


def test_admin_password_is_random_per_installation_and_stable(services: Services, tmp_path: Path) -> None:
    first = _service(services).admin_password()
    assert len(first) >= 16 and first == _service(services).admin_password()
    other = build_services(Settings(data_dir=tmp_path / "other", admin_password="admin-secret-1"))
    try:
        assert _service(other).admin_password() != first
    finally:
        other.db.dispose()


def test_feed_has_colleagues_then_the_users_phonebook_when_the_phonebook_is_installed(services: Services) -> None:
    anna = _user(services, "anna", "201")
    _user(services, "carla", "203")
    _user(services, "nobody")
    phonebook = PhonebookService(services.db, services.bus)
    phonebook.create(anna, True, ContactIn(name="Acme Sales", numbers=[{"type": "work", "number": "+39 0721 405516"}],
                                           shared=True))
    phonebook.create(anna, False, ContactIn(name="Mum", numbers=[{"type": "mobile", "number": "+39 333 1234567"}]))
    without = [(e.name, e.number) for e in _service(services).feed_entries(anna)]
    assert without == [("Anna", "201"), ("Carla", "203")], "users without an extension are not dialable"
    entries = list(_service(services, phonebook=phonebook).feed_entries(anna))
    names = [e.name for e in entries]
    assert names[:2] == ["Anna", "Carla"] and {"Acme Sales", "Mum"} <= set(names)
    assert next(e for e in entries if e.name == "Mum").kind == "Mobile"


def test_feed_escapes_names_and_follows_each_vendors_format() -> None:
    entries = [Entry("Eve </Name><Telephone>666", "201"), Entry("Bob Rossi", "+390721405516", "Mobile")]
    yealink = ET.fromstring(render_feed("yealink", entries))
    assert yealink.tag == "YealinkIPPhoneDirectory"
    assert [e.findtext("Name") for e in yealink.iter("DirectoryEntry")] == ["Eve </Name><Telephone>666", "Bob Rossi"]
    snom = ET.fromstring(render_feed("snom", entries))
    assert snom.tag == "SnomIPPhoneDirectory" and snom.findtext("Title") == "callto"
    gs = ET.fromstring(render_feed("grandstream", entries))
    bob = list(gs.iter("Contact"))[1]
    assert (bob.findtext("FirstName"), bob.findtext("LastName")) == ("Bob", "Rossi")
    phone = bob.find("Phone")
    assert phone is not None and phone.get("type") == "Mobile" and phone.findtext("accountindex") == "0"
    many = ET.fromstring(render_feed("fanvil", (Entry(f"n{i}", str(i)) for i in range(MAX_ENTRIES + 5))))
    assert len(list(many.iter("DirectoryEntry"))) == MAX_ENTRIES
