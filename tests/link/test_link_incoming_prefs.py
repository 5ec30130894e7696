"""Incoming calls in Link's settings (offscreen Qt) against a real server: the pop-up and ring tone switches
are the user's server-side preferences (shared with the web CTI, followed at once when changed elsewhere),
and the ring tone's speaker is chosen apart from the calls' one, kept in Link's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from callto.link import i18n
from callto.link.app import LinkController
from callto.link.secrets import Settings, TokenStore
from callto.link.settings_window import SettingsWindow, audio_outputs
from link.conftest import PASSWORD, SCREENSHOTS, make_user, qwait
from support.server import Api, ServerProcess

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def controller(qapp: Any, link_home: Path) -> Any:
    c = LinkController(Settings.load(), TokenStore())
    yield c
    c.shutdown()


def _ring(controller: LinkController, extension: str) -> None:
    """A call ringing for this user, as the event stream hands it to Link."""
    controller._on_event({"type": "call.ringing", "data": {
        "call_id": f"in-{len(controller.notifications)}", "direction": "inbound", "from": "+390721405516",
        "to": extension, "caller_name": "Rossi Costruzioni"}})


def test_popup_and_ring_tone_follow_the_users_server_preferences_both_ways(
    controller: LinkController, shared_server: ServerProcess, admin_api: Api
) -> None:
    user = make_user(admin_api)
    window = SettingsWindow(controller)
    controller.sign_in(shared_server.url, user.username, PASSWORD)
    qwait(lambda: controller.events_state.value == "connected", 15, "event stream")
    assert controller.me is not None and controller.me.preferences is not None
    assert window.incoming_popup.isChecked() and window.ringtone.isChecked()
    assert not window.ringtone.isHidden()  # the server keeps preferences: Link offers the ring tone switch
    window.show()
    window.fit_to_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert window.grab().save(str(SCREENSHOTS / "link-settings-incoming-calls.png"))
    ext = controller.me.extension
    _ring(controller, ext)
    assert controller.notifications[-1] == ("Incoming call", "Rossi Costruzioni (+390721405516) is calling.")

    # turned off in Link: saved in the user's profile on the server
    web = Api(shared_server.url).login(user.username, PASSWORD)
    try:
        window.incoming_popup.click()
        qwait(lambda: web.get("/api/v1/me/preferences").json()["incoming_popup"] is False, 10, "the server")
        count = len(controller.notifications)
        _ring(controller, ext)
        assert len(controller.notifications) == count  # no pop-up from Link

        # changed in the web CTI: Link's window follows at once (me.preferences on the event stream)
        assert web.patch("/api/v1/me/preferences", json={"ringtone": False, "incoming_popup": True}).status_code == 200
        qwait(lambda: not window.ringtone.isChecked() and window.incoming_popup.isChecked(), 10, "Link to follow")
        assert controller.ringtone is False and controller.incoming_popup is True
        window.ringtone.click()
        qwait(lambda: web.get("/api/v1/me/preferences").json()["ringtone"] is True, 10, "the ring tone back on")

        # the profile's language is Link's too; Link's choice goes to the profile ("auto" is null there)
        assert web.patch("/api/v1/me/preferences", json={"language": "it"}).status_code == 200
        qwait(lambda: i18n.language() == "it" and window.language.currentData() == "it", 10, "Italian")
        assert Settings.load().language == "it"
        controller.set_language("auto")
        qwait(lambda: web.get("/api/v1/me/preferences").json()["language"] is None, 10, "the server")
    finally:
        web.close()
        i18n.set_language(None)
    window.close()


def test_choices_made_in_link_go_to_a_profile_that_has_none_yet(
    controller: LinkController, shared_server: ServerProcess, admin_api: Api
) -> None:
    controller.settings.incoming_popup = False  # chosen in this Link before the server kept preferences
    controller.settings.language = "en"
    user = make_user(admin_api)
    controller.sign_in(shared_server.url, user.username, PASSWORD)
    web = Api(shared_server.url).login(user.username, PASSWORD)
    try:
        qwait(lambda: web.get("/api/v1/me/preferences").json()["incoming_popup"] is False, 15, "the migration")
        prefs = web.get("/api/v1/me/preferences").json()
        assert prefs["language"] == "en" and prefs["ringtone"] is True and prefs["updated_at"]
        assert controller.incoming_popup is False
    finally:
        web.close()


def test_the_ring_tone_speaker_is_chosen_apart_from_the_calls_and_kept(
    controller: LinkController, link_home: Path
) -> None:
    controller.settings.ring_device = "USB Speakerphone"  # chosen earlier, unplugged now
    controller.settings.save()
    window = SettingsWindow(controller)
    listed = [window.ring_device.itemText(i) for i in range(window.ring_device.count())]
    assert listed == ["The same speaker as calls", *audio_outputs(), "USB Speakerphone (not connected)"]
    assert window.ring_device.currentText() == "USB Speakerphone (not connected)"
    changed: list[str] = []
    controller.ring_device_changed.connect(changed.append)
    window.ring_device.setCurrentIndex(0)
    window.ring_device.activated.emit(0)  # as a user's pick does
    assert changed == [""] and Settings.load().ring_device == ""
    window.close()
