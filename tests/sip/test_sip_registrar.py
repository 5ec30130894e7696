"""Registrar rules (RFC 3261 10.3): auth, exact contacts, expiry, un-REGISTER, ordering, events, restart."""

from __future__ import annotations

from callto.sip.auth import DigestClient
from callto.sip.endpoint import Source
from callto.sip.message import Request, parse_message
from callto.sip.ports import InMemoryBindingStore, SipAccount, StaticCredentials
from callto.sip.registrar import DeviceOffline, DeviceOnline, Registrar, RegistrarConfig, RegistrarReply

REALM = "pbx.test"
SRC = Source("udp", ("192.0.2.50", 34567))


def _creds() -> StaticCredentials:
    return StaticCredentials(
        [
            SipAccount("desk-201", "pw1", "dev-desk", "u-1", "201"),
            SipAccount("soft-201", "pw2", "dev-soft", "u-1", "201"),
        ]
    )


def _registrar(store: InMemoryBindingStore | None = None) -> Registrar:
    return Registrar(
        RegistrarConfig(realm=REALM, min_expires=60, max_expires=3600), _creds(), store or InMemoryBindingStore()
    )


def _register(
    contact: str | None,
    *,
    user: str = "desk-201",
    call_id: str = "c1",
    cseq: int = 1,
    expires: str | None = None,
    extra: str = "",
    auth: str | None = None,
) -> Request:
    lines = [
        f"REGISTER sip:{REALM} SIP/2.0",
        f"Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bK{cseq}{call_id};rport",
        f"From: <sip:{user}@{REALM}>;tag=x",
        f"To: <sip:{user}@{REALM}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        "Max-Forwards: 70",
        "User-Agent: TestPhone/1.0",
    ]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if auth is not None:
        lines.append(f"Authorization: {auth}")
    if extra:
        lines.append(extra)
    message = parse_message(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def _authed(reg: Registrar, now: float, contact: str | None, password: str = "pw1", **kw: object) -> RegistrarReply:
    user = str(kw.get("user", "desk-201"))
    challenge = reg.handle_register(_register(contact, **kw), SRC, now)  # type: ignore[arg-type]
    assert challenge.status == 401
    auth = DigestClient(user, password).authorization([v for _, v in challenge.headers], "REGISTER", f"sip:{REALM}")
    kw = {**kw, "cseq": int(kw.get("cseq", 1)) + 1}  # type: ignore[call-overload]
    return reg.handle_register(_register(contact, auth=auth, **kw), SRC, now)  # type: ignore[arg-type]


def test_unauthenticated_register_is_challenged_with_sha256_and_md5() -> None:
    reply = _registrar().handle_register(_register("<sip:x@192.0.2.50>"), SRC, 0.0)
    assert reply.status == 401
    values = [v for n, v in reply.headers if n == "WWW-Authenticate"]
    assert len(values) == 2 and "SHA-256" in values[0] and "MD5" in values[1]


def test_contact_is_stored_exactly_as_sent_with_source_and_metadata() -> None:
    reg = _registrar()
    contact = '"Desk" <sip:Q7x-91z@192.0.2.50:5060;transport=udp;ob>;+sip.instance="<urn:uuid:abc>";reg-id=1;q=0.7'
    reply = _authed(reg, 1000.0, contact, extra="Path: <sip:edge.example.com;lr>")
    assert reply.status == 200
    [binding] = reg.bindings("dev-desk")
    assert binding.contact == "sip:Q7x-91z@192.0.2.50:5060;transport=udp;ob"
    assert binding.contact_header == contact
    assert (binding.source_host, binding.source_port, binding.source_transport) == ("192.0.2.50", 34567, "udp")
    assert binding.instance == "<urn:uuid:abc>" and binding.reg_id == 1 and binding.q == 0.7
    assert binding.user_agent == "TestPhone/1.0"
    assert binding.path == ("<sip:edge.example.com;lr>",)
    assert binding.expires_at == 1000.0 + 3600
    # echoed with its parameters (RFC 5626 clients look for their +sip.instance / reg-id in the 200)
    assert ("Contact", f"{contact};expires=3600") in reply.headers


def test_first_contact_brings_device_online_and_last_removal_offline() -> None:
    reg = _registrar()
    online = _authed(reg, 0.0, "<sip:a@192.0.2.50>", expires="600")
    assert online.events == [
        DeviceOnline("dev-desk", "u-1", "201", "sip:a@192.0.2.50", "udp:192.0.2.50:34567", "TestPhone/1.0")
    ]
    second = _authed(reg, 1.0, "<sip:b@192.0.2.50>", call_id="c2", expires="600")
    assert second.events == []
    assert len(reg.bindings("dev-desk")) == 2
    gone = _authed(reg, 2.0, "<sip:a@192.0.2.50>", expires="0", cseq=5)
    assert gone.events == [] and len(reg.bindings("dev-desk")) == 1
    last = _authed(reg, 3.0, "*", expires="0", cseq=7, call_id="c2")
    assert last.events == [DeviceOffline("dev-desk", "u-1", "201", "unregistered")]
    assert reg.bindings("dev-desk") == []


def test_too_brief_interval_is_423_with_min_expires() -> None:
    reply = _authed(_registrar(), 0.0, "<sip:a@192.0.2.50>;expires=10")
    assert reply.status == 423 and ("Min-Expires", "60") in reply.headers


def test_expires_above_maximum_is_clamped() -> None:
    reg = _registrar()
    _authed(reg, 0.0, "<sip:a@192.0.2.50>", expires="99999")
    assert reg.bindings("dev-desk")[0].expires_at == 3600.0


def test_star_without_expires_zero_is_400() -> None:
    assert _authed(_registrar(), 0.0, "*").status == 400


def test_out_of_order_cseq_on_the_same_call_id_is_refused() -> None:
    reg = _registrar()
    _authed(reg, 0.0, "<sip:a@192.0.2.50>", cseq=10)
    assert _authed(reg, 1.0, "<sip:a@192.0.2.50>", cseq=3).status == 400
    assert _authed(reg, 1.0, "<sip:a@192.0.2.50>", cseq=3, call_id="other").status == 200


def test_credentials_must_own_the_address_of_record() -> None:
    reg = _registrar()
    challenge = reg.handle_register(_register("<sip:x@h>", user="soft-201"), SRC, 0.0)
    auth = DigestClient("desk-201", "pw1").authorization([v for _, v in challenge.headers], "REGISTER", "sip:x")
    reply = reg.handle_register(_register("<sip:x@h>", user="soft-201", cseq=2, auth=auth), SRC, 0.0)
    assert reply.status == 403


def test_wrong_password_is_forbidden_and_stores_nothing() -> None:
    reg = _registrar()
    assert _authed(reg, 0.0, "<sip:a@h>", password="nope").status == 403
    assert reg.bindings("dev-desk") == []


def test_query_without_contact_lists_bindings() -> None:
    reg = _registrar()
    _authed(reg, 0.0, "<sip:a@192.0.2.50>", expires="600")
    reply = _authed(reg, 100.0, None, cseq=5)
    assert reply.status == 200 and reply.headers == [("Contact", "<sip:a@192.0.2.50>;expires=500")]


def test_same_instance_replaces_the_old_contact() -> None:
    reg = _registrar()
    _authed(reg, 0.0, '<sip:old@192.0.2.50>;+sip.instance="<urn:uuid:1>";reg-id=1')
    _authed(reg, 1.0, '<sip:new@192.0.2.51>;+sip.instance="<urn:uuid:1>";reg-id=1', call_id="c9")
    assert [b.contact for b in reg.bindings("dev-desk")] == ["sip:new@192.0.2.51"]


def test_bindings_expire_and_the_device_goes_offline() -> None:
    reg = _registrar()
    _authed(reg, 0.0, "<sip:a@h>", expires="120")
    assert reg.next_expiry() == 120.0
    assert reg.expire(119.0) == []
    assert reg.expire(120.0) == [DeviceOffline("dev-desk", "u-1", "201", "expired")]
    assert reg.bindings("dev-desk") == []


def test_refreshed_binding_does_not_expire_at_the_old_time() -> None:
    reg = _registrar()
    _authed(reg, 0.0, "<sip:a@h>", expires="120")
    _authed(reg, 100.0, "<sip:a@h>", expires="120", cseq=5)
    assert reg.expire(121.0) == []
    assert len(reg.bindings("dev-desk")) == 1


def test_frequent_refreshes_keep_one_expiry_entry_and_the_latest_expiry() -> None:
    reg = _registrar()
    for i in range(50):
        assert _authed(reg, float(i), "<sip:a@h>", expires="120", cseq=2 * i + 1).status == 200
    assert len(reg._heap) == 1  # a refresh that only moves the expiry later queues nothing new
    assert reg.expire(120.0) == [] and reg.expire(168.9) == []
    assert reg.expire(169.0) == [DeviceOffline("dev-desk", "u-1", "201", "expired")]
    _authed(reg, 200.0, "<sip:a@h>", expires="3600", cseq=500)
    _authed(reg, 201.0, "<sip:a@h>", expires="60", cseq=502)  # a shorter expiry moves the deadline earlier
    assert reg.next_expiry() == 261.0
    assert reg.expire(261.0) == [DeviceOffline("dev-desk", "u-1", "201", "expired")]


def test_bindings_survive_a_restart_through_the_store() -> None:
    store = InMemoryBindingStore()
    reg = _registrar(store)
    _authed(reg, 0.0, "<sip:a@h>", expires="600")
    _authed(reg, 0.0, "<sip:z@h>", user="soft-201", password="pw2", expires="60")
    again = _registrar(store)
    events = again.load(100.0)  # the soft phone's binding expired while we were down
    assert [e.device_id for e in events] == ["dev-desk"]
    assert [b.contact for b in again.bindings("dev-desk")] == ["sip:a@h"]
    assert again.bindings("dev-soft") == []
    assert len(store.bindings) == 1


def test_user_devices_share_the_extension() -> None:
    reg = _registrar()
    _authed(reg, 0.0, "<sip:a@h>")
    _authed(reg, 0.0, "<sip:b@h>", user="soft-201", password="pw2")
    assert sorted(b.device_id for b in reg.bindings_for_extension("201")) == ["dev-desk", "dev-soft"]
    assert reg.online_devices() == {"dev-desk", "dev-soft"}


def test_non_sip_address_of_record_is_400() -> None:
    request = _register("<sip:a@h>")
    request.headers.set("To", "isbn:2983792873")
    assert _registrar().handle_register(request, SRC, 0.0).status == 400


def test_too_many_contacts_keep_the_newest() -> None:
    reg = Registrar(RegistrarConfig(realm=REALM, max_bindings_per_device=2), _creds(), InMemoryBindingStore())
    for i in range(4):
        assert _authed(reg, float(i), f"<sip:c{i}@h>", call_id=f"c{i}").status == 200
    assert sorted(b.contact for b in reg.bindings("dev-desk")) == ["sip:c2@h", "sip:c3@h"]


def test_path_is_echoed_when_the_client_supports_it() -> None:
    reply = _authed(_registrar(), 0.0, "<sip:a@h>", extra="Supported: path\r\nPath: <sip:edge.example.com;lr>")
    assert ("Path", "<sip:edge.example.com;lr>") in reply.headers


def test_overlarge_expires_counts_as_the_maximum_not_an_error() -> None:
    reg = _registrar()
    reply = _authed(reg, 0.0, "<sip:a@h>;expires=100000000000000000000000000000000000000000")
    assert reply.status == 200
    assert reg.bindings("dev-desk")[0].expires_at == 3600.0


def test_unknown_user_and_wrong_password_get_the_same_answer() -> None:
    reg = _registrar()
    wrong = _authed(reg, 0.0, "<sip:a@h>", password="nope")
    challenge = reg.handle_register(_register("<sip:a@h>", user="nobody"), SRC, 0.0)
    auth = DigestClient("nobody", "x").authorization([v for _, v in challenge.headers], "REGISTER", "sip:x")
    unknown = reg.handle_register(_register("<sip:a@h>", user="nobody", cseq=2, auth=auth), SRC, 0.0)
    assert (wrong.status, wrong.reason) == (unknown.status, unknown.reason) == (403, "Forbidden (bad credentials)")
