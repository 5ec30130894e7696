"""The Link controller: signs in, keeps the event stream, places calls, and tells the UI what happened.

It owns the state (settings, token, the user's devices) and runs network work on the
:class:`~callto.link.worker.AsyncWorker` loop; results come back to the Qt thread as signals that the tray,
the settings window and the phone window listen to. Nothing here draws widgets, so the controller is
driven directly in tests with an offscreen ``QApplication``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QEvent, QObject, QTimer, Signal, Slot
from PySide6.QtGui import QClipboard, QFileOpenEvent, QGuiApplication

from callto.link import autostart
from callto.link.client import LinkClient, Me, fingerprint, pem_from_der, sign_in, ssl_context
from callto.link.connection_test import Check, run_checks
from callto.link.errors import InvalidLink, LinkError, SessionExpired
from callto.link.events import EventSession, SessionState
from callto.link.hotkey import GlobalHotkey, availability, describe, parse
from callto.link.i18n import EN, set_language, tr, tr_error
from callto.link.phone_window import click_id
from callto.link.relay import LanRelay
from callto.link.screenpop import Opener, ScreenPop, incoming_for
from callto.link.secrets import KeyringUnavailable, Settings, TokenStore
from callto.link.urls import Extracted, extract, find_number
from callto.link.worker import AsyncWorker

log = logging.getLogger("callto.link")

DIAL_UI_TIMEOUT = 8.0
# The phone window's dial: (number, done(ok, reason), the click's id for the INVITE's X-Callto-Click or None)
PhoneDialer = Callable[[str, Callable[[bool, str | None], None], str | None], None]
PENDING_GRACE_MS = 5000


class _Bridge(QObject):
    """Carries results from the network thread to the Qt thread (queued across threads)."""

    done = Signal(object, object)
    stream_event = Signal(object)
    state = Signal(str, str)
    dial = Signal(object, object)
    me = Signal(object)
    hotkey = Signal()


class LinkController(QObject):
    signed_in = Signal(object)  # Me
    sign_in_failed = Signal(object)  # LinkError
    me_changed = Signal(object)  # Me
    events_state_changed = Signal(str, str)  # state, reason
    notification = Signal(str, str)  # title, text
    call_placed = Signal(object)  # server answer
    call_failed = Signal(object)  # LinkError
    checks_done = Signal(object)  # list[Check]
    settings_requested = Signal()
    phone_requested = Signal()
    hotkey_changed = Signal(bool, str)  # active, what the settings window shows about the shortcut
    # Signed in but the keyring cannot keep the session: the user picks memory or file (keep_session).
    session_store_needed = Signal(str)  # the keyring's problem, in its own words
    session_kept = Signal(str)  # what the settings window says about where the session is kept
    preferences_changed = Signal()  # the server-side pop-up / ring tone preferences changed
    ring_device_changed = Signal(str)  # the speaker chosen for the ring tone ("" : the calls' speaker)

    def __init__(
        self, settings: Settings | None = None, tokens: TokenStore | None = None, opener: Opener | None = None
    ) -> None:
        super().__init__()
        self.settings = settings or Settings.load()
        set_language(self.settings.language)
        self.tokens = tokens or TokenStore()
        self.token: str | None = None
        self.me: Me | None = None
        self.events_state = SessionState.DISCONNECTED
        self.notifications: list[tuple[str, str]] = []
        self.pending: list[str] = []
        # Set by the phone window: dial(number, done(ok, reason), click id); None while no phone is open.
        self.phone_dialer: PhoneDialer | None = None
        self.worker = AsyncWorker()
        self._session: EventSession | None = None
        self._session_future: concurrent.futures.Future[None] | None = None
        self.relay = LanRelay(self._phones)
        # The CRM address for incoming calls; ``opener`` is the OS browser launch (a test passes its own).
        self.screen_pop = ScreenPop(opener)
        self._bridge = _Bridge()
        self._bridge.done.connect(self._on_done)
        self._bridge.stream_event.connect(self._on_event)
        self._bridge.state.connect(self._on_state)
        self._bridge.dial.connect(self._on_dial_request)
        self._bridge.me.connect(self._set_me)
        # pynput calls from its own thread; the bridge brings the press to the Qt thread (clipboard access).
        self._bridge.hotkey.connect(self._on_hotkey)
        self.hotkey = GlobalHotkey(self._bridge.hotkey.emit)
        # True while the user types a new combination in the settings window: that press is not a call.
        self.shortcut_editing = False
        self.hotkey_presses = 0
        # Link's own choices went to a profile that had none once (never again: the profile is the truth)
        self._prefs_migrated = False
        self._prefs_pending = 0  # changes sent and not answered yet

    # ------------------------------------------------------------------------------------------ plumbing
    def run(
        self,
        coro: Coroutine[Any, Any, Any],
        on_ok: Callable[[Any], None] | None = None,
        on_err: Callable[[BaseException], None] | None = None,
    ) -> concurrent.futures.Future[Any]:
        fut = self.worker.submit(coro)
        fut.add_done_callback(lambda f: self._bridge.done.emit((on_ok, on_err), f))
        return fut

    @Slot(object, object)
    def _on_done(self, callbacks: tuple[Any, Any], fut: concurrent.futures.Future[Any]) -> None:
        on_ok, on_err = callbacks
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is None:
            if on_ok is not None:
                try:
                    on_ok(fut.result())
                except Exception as failure:
                    # A failure after the answer (disk full, ...) must reach the UI, which would otherwise
                    # wait for an outcome forever ("Signing in..." that never ends).
                    log.exception("handling a result failed")
                    if on_err is not None:
                        on_err(failure)
        elif on_err is not None:
            on_err(exc)
        else:
            log.error("background task failed: %s", exc)

    def pinned_pem(self) -> str | None:
        """The explicitly trusted certificate, only for the server it was trusted for."""
        s = self.settings
        return s.trusted_cert_pem if s.trusted_cert_server == s.server_url else None

    def client(self, token: str | None = None) -> LinkClient:
        return LinkClient(
            self.settings.server_url,
            token=token if token is not None else self.token,
            trusted_cert_pem=self.pinned_pem(),
        )

    def notify(self, title: str, text: str) -> None:
        log.info("notify: %s: %s", title, text)
        self.notifications.append((title, text))
        del self.notifications[:-50]
        self.notification.emit(title, text)

    @property
    def signed_in_ok(self) -> bool:
        return bool(self.token and self.me is not None)

    # ------------------------------------------------------------------------------------------ startup
    def start(self) -> None:
        """Resume the saved session (token in the keyring) or ask for settings."""
        s = self.settings
        token = self.tokens.load(s.server_url, s.username) if s.server_url and s.username else None
        if not token:
            self.settings_requested.emit()
            return
        self.token = token

        async def resume() -> Me:
            async with self.client() as c:
                return await c.me()

        def ok(me: Me) -> None:
            self._set_me(me)
            self.signed_in.emit(me)
            self.start_events()
            self._flush_pending_soon()

        def err(exc: BaseException) -> None:
            if isinstance(exc, SessionExpired):
                self.tokens.delete(s.server_url, s.username)
                self.token = None
            self.notify("callto Link", tr_error(exc))
            self.settings_requested.emit()

        self.run(resume(), ok, err)

    # ------------------------------------------------------------------------------------------ sign-in
    def sign_in(self, server_url: str, username: str, password: str, otp: str | None = None) -> None:
        async def go() -> tuple[Me, str]:
            async with self.client(token="") as c:
                me = await sign_in(c, username, password, otp)
                assert c.token is not None
                return me, c.token

        def ok(result: tuple[Me, str]) -> None:
            me, token = result
            if self.token and self.token != token:
                self.stop_events()
            self.token = token
            self.settings.server_url = server_url
            self.settings.username = username
            self.settings.link_device_id = me.link_device.id if me.link_device else None
            self.settings.main_device_id = me.main_device_id
            self.settings.save()
            self._set_me(me)
            log.info("signed in as %s on %s", username, server_url)
            self.signed_in.emit(me)
            self.start_events()
            self._flush_pending_soon()
            # After the UI knows: a keyring that fails must not leave the window on "Signing in...".
            self._keep_token(server_url, username, token)

        def err(exc: BaseException) -> None:
            self.sign_in_failed.emit(exc if isinstance(exc, LinkError) else LinkError(str(exc)))

        # The address is stored before the answer so a certificate prompt can pin it for this server.
        self.settings.server_url = server_url
        self.run(go(), ok, err)

    def _keep_token(self, server_url: str, username: str, token: str) -> None:
        store = self.settings.session_store
        if store == "memory":
            self.session_kept.emit(tr("link.keptInMemory"))
            return
        if store == "file":
            self.keep_session("file")
            return
        try:
            self.tokens.save(server_url, username, token)
        except KeyringUnavailable as exc:
            log.warning("keyring unavailable (%s): asking where to keep the session", exc.message)
            self.session_store_needed.emit(str(exc.details.get("problem", exc.message)))

    def keep_session(self, where: str) -> None:
        """Keep the session ``"memory"`` (this run only) or in a ``"file"`` only this user can read."""
        s = self.settings
        if where == "file" and self.token:
            try:
                path = self.tokens.save_file(s.server_url, s.username, self.token)
            except OSError as exc:
                s.session_store = "memory"
                s.save()
                self.session_kept.emit(tr("link.fileFailed", path=str(exc.filename or ""), problem=exc.strerror or exc))
                return
            s.session_store = "file"
            s.save()
            self.session_kept.emit(tr("link.keptInFile", path=str(path)))
            return
        s.session_store = "memory"
        s.save()
        self.session_kept.emit(tr("link.keptInMemory"))

    def set_language(self, choice: str) -> str:
        """``auto``, ``en`` or ``it``; saved (in the user's server-side preferences too, where ``auto`` is
        null), used for every text from now on. Returns the language shown."""
        self.settings.language = choice if choice in ("en", "it") else "auto"
        self.settings.save()
        lang = self.settings.language
        self._set_server_preference(language=lang if lang != "auto" else None)
        return set_language(lang)

    def _follow_preferences(self, prefs: dict[str, Any]) -> None:
        """The profile's language, when it names one, is Link's too (null: Link keeps its own choice). A
        profile where the user never chose anything first gets what they had chosen in this Link."""
        lang = prefs.get("language")
        if lang in ("en", "it") and lang != self.settings.language:
            self.settings.language = str(lang)
            self.settings.save()
            set_language(self.settings.language)
        if prefs.get("updated_at") is None and not self._prefs_migrated:
            self._prefs_migrated = True
            old: dict[str, bool | str | None] = {}
            if not self.settings.incoming_popup:
                old["incoming_popup"] = False
            if self.settings.language in ("en", "it") and lang is None:
                old["language"] = self.settings.language
            if old:
                self._set_server_preference(**old)

    # -- incoming calls: the user's server-side preferences win over Link's own switch when there are any
    @property
    def server_preferences(self) -> dict[str, Any] | None:
        """The user's preferences the server keeps (shared with the web CTI), or None from a server without."""
        return self.me.preferences if self.me is not None else None

    @property
    def incoming_popup(self) -> bool:
        prefs = self.server_preferences
        if prefs is not None and isinstance(prefs.get("incoming_popup"), bool):
            return bool(prefs["incoming_popup"])
        return self.settings.incoming_popup

    @property
    def ringtone(self) -> bool | None:
        """Whether incoming calls ring aloud (the phone page plays the tone and follows the same preference);
        None when the server keeps no preferences (the phone page's own setting then decides)."""
        prefs = self.server_preferences
        return bool(prefs["ringtone"]) if prefs is not None and isinstance(prefs.get("ringtone"), bool) else None

    def set_incoming_popup(self, enabled: bool) -> None:
        self.settings.incoming_popup = enabled
        self.settings.save()
        self._set_server_preference(incoming_popup=enabled)

    def set_ringtone(self, enabled: bool) -> None:
        self._set_server_preference(ringtone=enabled)

    def _set_server_preference(self, **change: bool | str | None) -> None:
        if self.server_preferences is None or not self.token:
            return  # an older server: Link's own switch is all there is

        async def patch() -> dict[str, Any]:
            async with self.client() as c:
                return await c.set_preferences(**change)

        def saved(prefs: dict[str, Any]) -> None:
            self._prefs_pending -= 1
            self._apply_preferences(prefs)

        def failed(exc: BaseException) -> None:
            self._prefs_pending -= 1
            self.notify(tr("notify.prefsNotSaved"), _msg(exc))
            self.refresh_me()  # the window shows the preferences as they still are

        # the choice applies at once (the next call's pop-up obeys it); the server's answer confirms it
        me = self.me
        if me is not None:
            self.me = replace(me, preferences={**(me.preferences or {}), **change})
        self._prefs_pending += 1
        self.run(patch(), saved, failed)

    def _apply_preferences(self, prefs: dict[str, Any]) -> None:
        me = self.me
        if me is None or not isinstance(prefs, dict):
            return
        if me.preferences is not None and _older(prefs, me.preferences):
            return  # a change's answer that arrived after a later change made elsewhere (me.preferences)
        merged = {**(me.preferences or {}), **{k: v for k, v in prefs.items() if k != "type"}}
        self.me = replace(me, preferences=merged)
        self._follow_preferences(merged)
        self.preferences_changed.emit()

    def set_ring_device(self, name: str) -> None:
        """The speaker the ring tone plays on, by the name the system gives it ("" for the calls' one)."""
        self.settings.ring_device = name
        self.settings.save()
        self.ring_device_changed.emit(name)

    def sign_out(self) -> None:
        token = self.token
        self.stop_events()
        if token:

            async def out() -> None:
                async with self.client(token) as c:
                    await c.logout()

            self.run(out(), None, lambda e: None)
        self.tokens.delete(self.settings.server_url, self.settings.username)
        self.token = None
        self.me = None
        self.screen_pop.reset()

    def trust_certificate(self, der: bytes) -> str:
        """Pin the server's certificate explicitly (after the user compared the fingerprint)."""
        fp = fingerprint(der)
        self.settings.trusted_cert_sha256 = fp
        self.settings.trusted_cert_pem = pem_from_der(der)
        self.settings.trusted_cert_server = self.settings.server_url
        self.settings.save()
        return fp

    @Slot(object)
    def _set_me(self, me: Me) -> None:
        old, self.me = self.me, me
        if me.main_device_id is not None:
            self.settings.main_device_id = me.main_device_id
        held = old.preferences if old is not None else None
        if me.preferences is not None and held is not None and (self._prefs_pending or _older(me.preferences, held)):
            # a /me read before the user's last choice reached the server: the choice stands
            me = self.me = replace(me, preferences=held)
        if me.preferences is not None:
            self._follow_preferences(me.preferences)
        self.me_changed.emit(me)

    def refresh_me(self) -> None:
        async def get() -> Me:
            async with self.client() as c:
                return await c.me()

        self.run(get(), self._set_me, lambda e: None)

    def set_main_device(self, device_id: int) -> concurrent.futures.Future[Any]:
        async def put() -> Me:
            async with self.client() as c:
                await c.set_main_device(device_id)
                return await c.me()

        def ok(me: Me) -> None:
            self.settings.main_device_id = device_id
            self.settings.save()
            self._set_me(me)
            dev = me.device(device_id)
            shown = dev.describe() if dev else device_id
            self.notify(tr("settings.mainDevice"), tr("notify.mainDeviceSet", device=shown))

        return self.run(put(), ok, lambda e: self.notify(tr("notify.mainDeviceNotSet"), _msg(e)))

    # ------------------------------------------------------------------------------------------ calls
    def handle_url(self, raw: str) -> None:
        """A clicked link or a forwarded URL: extract the number and call it."""
        log.info("call requested: %s", raw)
        try:
            number = extract(raw)
        except LinkError as exc:
            self.notify(tr("notify.cannotCall"), exc.message)
            self.call_failed.emit(exc)
            return
        self._call(number)

    def _call(self, number: Extracted) -> None:
        if not self.signed_in_ok:
            self.pending.append(number.target)
            self.notify(tr("notify.signInToCall"), tr("notify.willCall", number=number.target))
            self.settings_requested.emit()
            return
        main = self.me.main_device if self.me else None
        if main is not None and main.kind == "link" and self.events_state is not SessionState.CONNECTED:
            # Link is the phone: the server can only reach it once the event stream is up.
            self.pending.append(number.target)
            self._flush_pending_soon()
            return
        self.place_call(number.target)

    def place_call(self, target: str) -> concurrent.futures.Future[Any]:
        key = str(uuid.uuid4())

        async def post() -> dict[str, Any]:
            async with self.client() as c:
                return await c.place_call(target, idempotency_key=key)

        def ok(answer: dict[str, Any]) -> None:
            log.info("call placed: %s %s", target, answer)
            device = answer.get("device_id")
            dev = self.me.device(int(str(device))) if self.me and str(device).isdigit() else None
            where = dev.describe() if dev else tr("notify.yourMainDevice")
            self.notify(tr("notify.calling", number=target), tr("notify.pickUp", device=where))
            self.call_placed.emit(answer)

        def err(exc: BaseException) -> None:
            log.info("call failed: %s: %s", target, _msg(exc))
            self.notify(tr("notify.callFailed", number=target), _msg(exc))
            self.call_failed.emit(exc)
            if isinstance(exc, SessionExpired):
                self.settings_requested.emit()

        return self.run(post(), ok, err)

    def move_here(self) -> concurrent.futures.Future[Any] | None:
        """Pull the user's call (on a desk phone, the web phone) onto Link's own phone."""
        device = self.me.link_device if self.me else None
        if device is None:
            self.notify(tr("notify.moveFailed"), tr("notify.noLinkDevice"))
            return None
        return self.move_call(device.id)

    def move_to_main(self) -> concurrent.futures.Future[Any] | None:
        """Move the user's call (on Link's phone, the web phone) to their main device (their desk phone)."""
        device = self.me.main_device if self.me else None
        if device is None or device.kind == "link":
            self.notify(tr("notify.moveFailed"), tr("notify.mainIsLink"))
            return None
        return self.move_call(device.id)

    def move_call(self, device_id: int) -> concurrent.futures.Future[Any]:
        async def post() -> dict[str, Any]:
            async with self.client() as c:
                return await c.move_call(device_id)

        def ok(answer: dict[str, Any]) -> None:
            dev = self.me.device(device_id) if self.me else None
            self.notify(tr("notify.moved"), tr("notify.movedText", device=dev.describe() if dev else str(device_id)))

        def err(exc: BaseException) -> None:
            log.info("move to device %s failed: %s", device_id, _msg(exc))
            self.notify(tr("notify.moveFailed"), move_failure_text(exc))

        return self.run(post(), ok, err)

    def _flush_pending_soon(self) -> None:
        # When Link itself is the main device the server needs Link's event session (hello) to route
        # the call, so pending clicks go once the stream is up; a stream blocked by a firewall must not
        # hold them forever, hence the timer.
        if self.pending:
            QTimer.singleShot(PENDING_GRACE_MS, self._flush_pending)

    def _flush_pending(self) -> None:
        pending, self.pending = self.pending, []
        for target in pending:
            self.place_call(target)

    def dial_selection(self) -> None:
        """Call the number in the selected text (X11's primary selection) or else in the clipboard."""
        cb = QGuiApplication.clipboard()
        text, source = "", "selected text"
        if cb.supportsSelection():
            text = cb.text(QClipboard.Mode.Selection)
        if not text.strip():
            text, source = cb.text(QClipboard.Mode.Clipboard), "clipboard"
        log.info("dial selection: %r from the %s", text[:80], source)
        try:
            if not text.strip():
                raise InvalidLink(
                    "Nothing is selected or copied. Select a phone number (or copy it), then try again."
                    if cb.supportsSelection()
                    else "The clipboard is empty. Copy a phone number, then try again."
                )
            number = find_number(text, source=source)
        except LinkError as exc:
            self.notify(tr("notify.noNumber"), exc.message)
            self.call_failed.emit(exc)
            return
        self._call(number)

    # ------------------------------------------------------------------------------------------ shortcut
    def enable_shortcut(self) -> bool:
        """Start the global shortcut saved in the settings; ``hotkey_changed`` tells the outcome."""
        active = self.hotkey.set(self.settings.shortcut)
        if not active:
            log.info("global shortcut off: %s", self.hotkey.reason)
        self.hotkey_changed.emit(active, self.shortcut_status())
        return active

    def set_shortcut(self, sequence: str) -> bool:
        """Check, save and apply a new combination; ``ValueError`` (in plain words) when it cannot be one."""
        shortcut = parse(sequence)
        self.settings.shortcut = shortcut.qt
        self.settings.save()
        return self.enable_shortcut()

    def shortcut_status(self) -> str:
        words = self.hotkey.shortcut.words if self.hotkey.shortcut else self.settings.shortcut
        if self.hotkey.active:
            return tr("hotkey.active", shortcut=words)
        if self.hotkey.reason:
            return self.hotkey.reason
        found = availability()
        return found.reason if not found.ok else tr("hotkey.once", shortcut=describe(words))

    @Slot()
    def _on_hotkey(self) -> None:
        self.hotkey_presses += 1
        if self.shortcut_editing:
            return
        log.info("global shortcut pressed")
        self.dial_selection()

    # ------------------------------------------------------------------------------------------ tests
    def test_connection(self) -> concurrent.futures.Future[Any]:
        state = self.events_state if self._session is not None else None

        async def go() -> list[Check]:
            return await run_checks(
                self.settings.server_url,
                self.token,
                trusted_cert_pem=self.pinned_pem(),
                events_state=state,
            )

        return self.run(go(), self.checks_done.emit, lambda e: self.notify("Test connection", _msg(e)))

    # ------------------------------------------------------------------------------------------ events
    def start_events(self) -> None:
        if self._session is not None or not self.token:
            return
        https = self.settings.server_url.startswith("https")
        session = EventSession(
            self.settings.server_url,
            lambda: self.token,
            self.settings.link_device_id,
            ssl_ctx=ssl_context(self.pinned_pem()) if https else None,
            relay=self.relay,
            on_dial=self._dial_from_server,
            on_event=self._bridge.stream_event.emit,
            on_state=lambda st, why: self._bridge.state.emit(st.value, why or ""),
        )
        self._session = session
        self._session_future = self.worker.submit(session.run())

    def stop_events(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            self.worker.call_soon(session.stop)

    def nudge_events(self) -> None:
        """The network changed or the computer woke: reconnect now."""
        if self._session is not None:
            self.worker.call_soon(self._session.nudge)

    @Slot(str, str)
    def _on_state(self, state: str, why: str) -> None:
        self.events_state = SessionState(state)
        log.info("event stream %s %s", state, why)
        self.events_state_changed.emit(state, why)
        if self.events_state is SessionState.CONNECTED:
            self.refresh_me()
            self._flush_pending()
        elif self.events_state is SessionState.UNAUTHORIZED and self.token:
            self._session = None
            self.notify(tr("notify.signedOut"), tr("notify.signedOutText"))
            self.settings_requested.emit()

    @Slot(object)
    def _on_event(self, msg: dict[str, Any]) -> None:
        kind = str(msg.get("type", ""))
        data = msg.get("data") if isinstance(msg.get("data"), dict) else {}
        assert isinstance(data, dict)
        name = str(data.get("from_name") or data.get("caller_name") or "")
        caller = str(data.get("from") or data.get("caller") or "")
        # the caller's name (from the server's phonebook or directory) with the number, else what is known
        peer = f"{name} ({caller})" if name and caller and name != caller else name or caller
        # an internal call to this user's extension is incoming too (the caller gets the same event)
        inbound = incoming_for(data, self.me.extension if self.me else "")
        number = str(data.get("to") or data.get("number") or data.get("dialed") or "")
        if isinstance(data.get("number"), dict):
            number = str(data["number"].get("dialed") or data["number"].get("e164") or "")
        unknown = tr("notify.unknownCaller")
        self._screen_pop(msg)
        if kind == "call.ringing" and inbound:
            # Users who answer on a desk phone turn this off: the phone itself rings.
            if self.incoming_popup:
                self.notify(tr("notify.incoming"), tr("notify.incomingText", peer=peer or unknown))
        elif kind == "call.ringing":
            self.notify(tr("notify.ringing"), tr("notify.ringingText", number=number or "-"))
        elif kind == "call.answered" and not inbound:
            self.notify(tr("notify.connected"), tr("notify.connectedText", number=number or peer or "-"))
        elif kind == "call.ended":
            reason = str(data.get("reason") or "")
            if inbound and reason in ("missed", "no-answer", "cancelled", "canceled"):
                self.notify(tr("notify.missed"), tr("notify.missedText", peer=peer or unknown))
            elif reason and reason not in ("normal", "hangup", "completed", "bye"):
                self.notify(tr("call.ended"), tr("notify.endedText", reason=reason))
        elif kind == "history.new" and (data.get("missed") or data.get("status") == "missed"):
            self.notify(tr("notify.missed"), tr("notify.missedText", peer=peer or unknown))
        elif kind in ("device.online", "device.offline", "presence.changed"):
            self.refresh_me()
        elif kind == "me.preferences":
            # changed in the web CTI (or another Link): this Link follows at once
            self._apply_preferences(data)

    def _screen_pop(self, msg: dict[str, Any]) -> None:
        """Ask the server for the address of an incoming call's screen pop; open it at the user's moment."""
        me = self.me
        query = self.screen_pop.query(msg, me.extension if me else "")
        if query is None or not self.token:
            return
        kind = str(msg.get("type", ""))

        async def get() -> dict[str, Any]:
            async with self.client() as c:
                return await c.screen_pop_url(query["number"], query["name"], query["call_id"])

        def ok(answer: dict[str, Any]) -> None:
            done = self.screen_pop.answer(kind, query["call_id"], answer)
            if done is not None and not done[1]:
                self.notify(tr("notify.screenPopFailed"), tr("notify.screenPopFailedText", url=done[0]))

        # An older server (404) or a network hiccup: no screen pop, the call goes on.
        self.run(get(), ok, lambda e: log.info("screen pop unavailable: %s", _msg(e)))

    # -- dial commands: the server asks Link (as a phone) to place a call
    async def _dial_from_server(self, data: dict[str, Any]) -> tuple[bool, str | None]:
        fut: asyncio.Future[tuple[bool, str | None]] = asyncio.get_running_loop().create_future()
        self._bridge.dial.emit(data, fut)
        return await asyncio.wait_for(fut, DIAL_UI_TIMEOUT)

    @Slot(object, object)
    def _on_dial_request(self, data: dict[str, Any], fut: asyncio.Future[tuple[bool, str | None]]) -> None:
        number = str(data.get("to") or "")
        if isinstance(data.get("number"), dict):
            number = str(data["number"].get("dialed") or number)

        def settle(ok: bool, reason: str | None) -> None:
            log.info("dial command %s -> ok=%s %s", number, ok, reason or "")

            def _set() -> None:
                if not fut.done():
                    fut.set_result((ok, reason))

            self.worker.call_soon(_set)

        if self.phone_dialer is None:
            self.phone_requested.emit()
            settle(False, "Link's phone window is not open on this computer.")
            return
        try:
            # The command's call_id is the click's id: the page's INVITE names it, so the call is the click's.
            self.phone_dialer(number, settle, click_id(data.get("call_id")))
        except Exception as exc:  # the web page may fail in any way; say it, do not crash
            settle(False, f"Link's phone could not dial: {exc}")

    async def _phones(self, refresh: bool) -> dict[int, Any]:
        me = self.me
        if refresh or me is None:
            async with self.client() as c:
                me = await c.me()
            self._bridge.me.emit(me)
        return {d.id: d for d in me.devices}

    # ------------------------------------------------------------------------------------------ misc
    def set_start_at_login(self, enabled: bool) -> str:
        message = autostart.apply(enabled)
        self.settings.start_at_login = enabled
        self.settings.save()
        return message

    def shutdown(self) -> None:
        self.hotkey.stop()
        self.stop_events()
        self.worker.stop()


class UrlOpenFilter(QObject):
    """macOS delivers clicked ``tel:``/``callto:`` URLs to a running app as ``QFileOpenEvent``."""

    def __init__(self, on_url: Callable[[str], None]) -> None:
        super().__init__()
        self.on_url = on_url

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.FileOpen and isinstance(event, QFileOpenEvent):
            url = event.url().toString() or event.file()
            if url:
                self.on_url(url)
                return True
        return False


def _older(prefs: dict[str, Any], than: dict[str, Any]) -> bool:
    """Whether ``prefs`` were chosen before ``than`` (the server's ``updated_at``, ISO 8601 in UTC)."""
    mine, theirs = prefs.get("updated_at"), than.get("updated_at")
    if not isinstance(theirs, str):
        return False
    return not isinstance(mine, str) or mine < theirs


def move_failure_text(exc: BaseException) -> str:
    """Why a move did not happen, in the language in use (the server's stable ids, its words otherwise)."""
    error = getattr(exc, "error", "")
    details = getattr(exc, "details", None) or {}
    if error == "move-failed":
        reason = str(details.get("reason") or "failed")
        return tr("notify.moveStays", reason=tr(f"move.{reason}") if f"move.{reason}" in EN else tr("move.failed"))
    if f"err.{error}" in EN:
        return tr(f"err.{error}")
    return _msg(exc)


def _msg(exc: BaseException) -> str:
    return tr_error(exc) if isinstance(exc, LinkError) else str(exc) or type(exc).__name__
