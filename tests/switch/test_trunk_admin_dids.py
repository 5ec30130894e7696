"""Trunk DIDs as the admin service stores them and hands them to the switch: rows stored before the one
number parser (bare digits, no text as typed) keep routing and count as the same number, a foreign DID is
not given a national rendering, and numbers without a country code are read in the dial plan's country."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callto.app import Services, build_services
from callto.config import load_settings
from callto.directory.schemas import UserCreate
from callto.errors import Conflict
from callto.trunks.schemas import Did, TrunkIn
from callto.trunks.service import TrunkService
from support.server import ADMIN_PASSWORD


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    settings = load_settings({"CALLTO_DATA_DIR": str(tmp_path), "CALLTO_ADMIN_PASSWORD": ADMIN_PASSWORD})
    services = build_services(settings)
    try:
        yield services
    finally:
        services.db.dispose()


def _user(services: Services, name: str) -> int:
    return services.directory.create_user(UserCreate(username=name, display_name=name, password="password-123")).id


def _switch_dids(trunks: TrunkService) -> list[tuple[str, Any]]:
    return [(d["number"], d["user_id"]) for c in trunks.configs() for d in c["dids"]]


def test_a_did_stored_as_bare_digits_before_keeps_routing_in_every_rendering(
    services: Services, tmp_path: Path
) -> None:
    anna = _user(services, "anna")
    trunks = TrunkService(services.db, services.directory)
    trunk = trunks.create(TrunkIn(name="old", host="127.0.0.1", dids=[Did(number="+390721405599", user_id=anna)]))
    with sqlite3.connect(tmp_path / "callto.db") as conn:  # as the admin API stored it before
        conn.execute("UPDATE sip_trunks SET dids = ? WHERE id = ?",
                     (f'[{{"number": "0721405501", "user_id": {anna}}}]', trunk["id"]))
    assert trunks.get(trunk["id"])["dids"] == [{"number": "0721405501", "user_id": anna}]
    assert _switch_dids(trunks) == [("0721405501", anna), ("+390721405501", anna)]
    with pytest.raises(Conflict) as taken:  # the same number in another spelling, on another trunk
        trunks.create(TrunkIn(name="new", host="127.0.0.2", dids=[Did(number="tel:+39-0721-405501", user_id=anna)]))
    assert taken.value.error == "did-taken" and taken.value.details["dids"] == ["tel:+39-0721-405501"]


def test_a_foreign_did_gets_no_national_rendering_and_the_dial_plan_country_reads_the_rest(
    services: Services,
) -> None:
    anna = _user(services, "anna")
    trunks = TrunkService(services.db, services.directory)
    trunks.create(TrunkIn(name="uk", host="127.0.0.1", dids=[Did(number="+44 (0)20 7946 0000", user_id=anna)]))
    assert _switch_dids(trunks) == [("+442079460000", anna)]
    services.directory.put_setting("dialplan", {"country": "GB"})
    created = trunks.create(TrunkIn(name="london", host="127.0.0.2", dids=[Did(number="020 7946 0001", user_id=anna)]))
    assert created["dids"] == [{"number": "020 7946 0001", "user_id": anna}]
    # now both are home numbers: each also in its national digits
    assert _switch_dids(trunks) == [("+442079460000", anna), ("02079460000", anna),
                                    ("+442079460001", anna), ("02079460001", anna)]
