"""The registrar's lookups by user and by extension (used on every INVITE) agree with a scan of every binding.

They are served from indexes kept on add, refresh, removal, expiry, the per-device limit and the restore from
the store; each test checks the lookups against the full scan they replaced after every step.
"""

from __future__ import annotations

import random

from callto.sip.auth import DigestClient
from callto.sip.endpoint import Source
from callto.sip.message import Request, parse_message
from callto.sip.ports import Binding, InMemoryBindingStore, SipAccount, StaticCredentials
from callto.sip.registrar import Registrar, RegistrarConfig, RegistrarReply

REALM = "pbx.test"
SRC = Source("udp", ("192.0.2.50", 34567))
ACCOUNTS = [
    SipAccount("desk-201", "pw", "dev-desk", "u-1", "201"),
    SipAccount("soft-201", "pw", "dev-soft", "u-1", "201"),
    SipAccount("desk-202", "pw", "dev-202", "u-2", "202"),
    SipAccount("desk-203", "pw", "dev-203", "u-3", "203"),
]


def _register(user: str, contact: str, expires: int, call_id: str, cseq: int, auth: str | None = None) -> Request:
    lines = [
        f"REGISTER sip:{REALM} SIP/2.0",
        f"Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bK{cseq}{call_id}",
        f"From: <sip:{user}@{REALM}>;tag=x",
        f"To: <sip:{user}@{REALM}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: {contact}",
        f"Expires: {expires}",
    ]
    if auth is not None:
        lines.append(f"Authorization: {auth}")
    message = parse_message(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


class _Phone:
    """One device's REGISTER dialog: its own Call-ID and rising CSeq, answering the digest challenge."""

    def __init__(self, username: str) -> None:
        self.username = username
        self.cseq = 0

    def register(self, reg: Registrar, now: float, contact: str, expires: int) -> RegistrarReply:
        self.cseq += 1
        challenge = reg.handle_register(_register(self.username, contact, expires, self.username, self.cseq), SRC, now)
        assert challenge.status == 401
        auth = DigestClient(self.username, "pw").authorization(
            [v for _, v in challenge.headers], "REGISTER", f"sip:{REALM}"
        )
        self.cseq += 1
        request = _register(self.username, contact, expires, self.username, self.cseq, auth)
        return reg.handle_register(request, SRC, now)


def _scan(reg: Registrar) -> list[Binding]:
    return [b for device in reg._by_device.values() for b in device.values()]


def _assert_lookups_match_a_scan(reg: Registrar) -> None:
    everything = _scan(reg)
    keys = {b.user_id for b in everything} | {"u-1", "u-2", "u-3", "nobody"}
    for user_id in keys:
        expected = sorted((b.device_id, b.binding_id) for b in everything if b.user_id == user_id)
        assert sorted((b.device_id, b.binding_id) for b in reg.bindings_for_user(user_id)) == expected
    for extension in {b.extension for b in everything} | {"201", "202", "203", "999"}:
        expected = sorted((b.device_id, b.binding_id) for b in everything if b.extension == extension)
        assert sorted((b.device_id, b.binding_id) for b in reg.bindings_for_extension(extension)) == expected
    # nothing lingers for keys without bindings: the indexes shrink with the bindings
    assert set(reg._devices_by_user) == {b.user_id for b in everything}
    assert set(reg._devices_by_extension) == {b.extension for b in everything}


def test_random_registrations_refreshes_removals_and_expiries_keep_the_lookups_exact() -> None:
    rng = random.Random(3261)
    store = InMemoryBindingStore()
    reg = Registrar(RegistrarConfig(realm=REALM, max_bindings_per_device=3), StaticCredentials(ACCOUNTS), store)
    phones = [_Phone(a.username) for a in ACCOUNTS]
    now = 0.0
    for _ in range(400):
        now += rng.uniform(0.0, 40.0)
        action = rng.random()
        if action < 0.8:
            phone = rng.choice(phones)
            contact = f"<sip:c{rng.randrange(5)}@192.0.2.{rng.randrange(1, 4)}>"
            expires = rng.choice([0, 60, 120, 600])
            assert phone.register(reg, now, contact, expires).status == 200
        elif action < 0.9:
            reg.expire(now)
        else:  # a restart: a new registrar reads the store back
            reg = Registrar(reg.config, reg.credentials, store)
            reg.load(now)
        _assert_lookups_match_a_scan(reg)


def test_a_device_moved_to_another_extension_is_found_under_the_new_one_only() -> None:
    credentials = StaticCredentials(ACCOUNTS)
    reg = Registrar(RegistrarConfig(realm=REALM), credentials, InMemoryBindingStore())
    phone = _Phone("desk-203")
    assert phone.register(reg, 0.0, "<sip:a@192.0.2.1>", 600).status == 200
    assert [b.device_id for b in reg.bindings_for_extension("203")] == ["dev-203"]
    # the admin gives the device to another user and extension; its next refresh carries the new owner
    credentials.add(SipAccount("desk-203", "pw", "dev-203", "u-2", "202"))
    assert phone.register(reg, 10.0, "<sip:a@192.0.2.1>", 600).status == 200
    assert reg.bindings_for_extension("203") == [] and reg.bindings_for_user("u-3") == []
    assert [b.device_id for b in reg.bindings_for_user("u-2")] == ["dev-203"]
    _assert_lookups_match_a_scan(reg)
    assert phone.register(reg, 20.0, "<sip:a@192.0.2.1>", 0).status == 200
    assert reg.bindings_for_user("u-2") == []
    _assert_lookups_match_a_scan(reg)


def test_lookup_by_user_is_ordered_by_device_registration() -> None:
    reg = Registrar(RegistrarConfig(realm=REALM), StaticCredentials(ACCOUNTS), InMemoryBindingStore())
    _Phone("soft-201").register(reg, 0.0, "<sip:s@192.0.2.2>", 600)
    _Phone("desk-201").register(reg, 1.0, "<sip:d@192.0.2.1>", 600)
    assert [b.device_id for b in reg.bindings_for_user("u-1")] == ["dev-soft", "dev-desk"]
