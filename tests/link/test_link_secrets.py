"""Token in the keyring, settings on disk with nothing secret, certificate pins per server."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from callto.link.secrets import Settings, TokenStore


def test_token_round_trips_through_the_keyring_backend(link_home: Path, tmp_path: Path) -> None:
    store = TokenStore()
    assert "FileKeyring" in store.backend_name()
    store.save("https://pbx.example.com", "mario", "tok-123")
    assert store.load("https://pbx.example.com", "mario") == "tok-123"
    assert store.load("https://pbx.example.com", "luigi") is None
    assert "tok-123" in (tmp_path / "keyring.json").read_text()
    store.delete("https://pbx.example.com", "mario")
    store.delete("https://pbx.example.com", "mario")  # deleting twice is not an error
    assert store.load("https://pbx.example.com", "mario") is None


def test_settings_file_is_private_and_holds_no_secret_fields(link_home: Path) -> None:
    s = Settings(server_url="https://pbx.example.com", username="mario", main_device_id=3)
    path = s.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert not {k for k in data if "password" in k or "token" in k}
    assert Settings.load().main_device_id == 3


def test_damaged_settings_file_starts_fresh(link_home: Path) -> None:
    path = Settings.path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    assert Settings.load() == Settings()


def test_a_pinned_certificate_applies_only_to_the_server_it_was_trusted_for(qapp: object, link_home: Path) -> None:
    from callto.link.app import LinkController

    c = LinkController(Settings(server_url="https://a.example.com"), TokenStore())
    try:
        c.settings.trusted_cert_pem = "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n"
        c.settings.trusted_cert_server = "https://a.example.com"
        assert c.pinned_pem() == c.settings.trusted_cert_pem
        c.settings.server_url = "https://b.example.com"
        assert c.pinned_pem() is None
    finally:
        c.shutdown()
