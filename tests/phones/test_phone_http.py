"""phone_http against a fake of Yealink's Action URI contract: ok, wrong password, unreachable, refused."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from callto.dialer.numbers import InvalidNumber
from callto.phones.errors import InvalidPhoneConfig
from callto.phones.http import PhoneHttpOutcome, PhoneTarget, build_action_request, phone_http
from support.fake_phones import FakeYealinkPhone

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(params=["basic", "digest"])
def phone(request: pytest.FixtureRequest) -> Iterator[FakeYealinkPhone]:
    with FakeYealinkPhone(password="web-pass-1", auth=request.param) as fake:
        yield fake


def target(phone: FakeYealinkPhone, password: str = "web-pass-1") -> PhoneTarget:
    return PhoneTarget(vendor="yealink", host="127.0.0.1", port=phone.port, password=password)


def test_desk_phone_dials_the_number_it_is_told(phone: FakeYealinkPhone) -> None:
    dialed: list[str | None] = []
    got_call = threading.Event()

    def on_action(action: str, argument: str | None) -> None:
        if action == "call":
            dialed.append(argument)
            got_call.set()

    phone.on_action = on_action
    result = asyncio.run(phone_http(target(phone), "call", number="+390721405516"))
    assert result.outcome is PhoneHttpOutcome.OK, result
    assert result.status_code == 200
    assert got_call.wait(5)
    # The '+' survives URL encoding: the phone sees exactly the number, not a space.
    assert dialed == ["+390721405516"]
    assert phone.requests[-1].path == "/servlet"


def test_answer_hangup_hold_and_dtmf_reach_the_phone(phone: FakeYealinkPhone) -> None:
    async def run() -> list[PhoneHttpOutcome]:
        return [
            (await phone_http(target(phone), "answer")).outcome,
            (await phone_http(target(phone), "hold")).outcome,
            (await phone_http(target(phone), "dtmf", digits="12*#")).outcome,
            (await phone_http(target(phone), "hangup")).outcome,
        ]

    assert asyncio.run(run()) == [PhoneHttpOutcome.OK] * 4
    assert phone.actions == [
        ("answer", None),
        ("hold", None),
        ("dtmf", "1"),
        ("dtmf", "2"),
        ("dtmf", "*"),
        ("dtmf", "#"),
        ("hangup", None),
    ]


def test_wrong_web_password_is_auth_failed_and_nothing_is_dialled(phone: FakeYealinkPhone) -> None:
    result = asyncio.run(phone_http(target(phone, password="wrong"), "call", number="201"))
    assert result.outcome is PhoneHttpOutcome.AUTH_FAILED
    assert result.status_code == 401
    assert phone.actions == []


def test_sender_outside_the_allow_list_is_rejected() -> None:
    with FakeYealinkPhone(password="p", allowed_ips=("10.9.9.9",)) as fake:
        result = asyncio.run(phone_http(target(fake, password="p"), "call", number="201"))
    assert result.outcome is PhoneHttpOutcome.REJECTED
    assert result.status_code == 403
    assert "allow list" in result.detail


def test_unreachable_phone_fails_fast_and_typed() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connection refused
        started = time.monotonic()
        result = asyncio.run(
            phone_http(PhoneTarget(vendor="yealink", host="127.0.0.1", port=port), "call", number="201")
        )
    assert result.outcome is PhoneHttpOutcome.UNREACHABLE
    assert time.monotonic() - started < 1.5
    assert result.status_code is None


def test_silent_phone_times_out_as_unreachable() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)  # accepts the TCP connection, never answers HTTP
        port = server.getsockname()[1]
        started = time.monotonic()
        result = asyncio.run(
            phone_http(PhoneTarget(vendor="yealink", host="127.0.0.1", port=port), "call", number="201", timeout=0.5)
        )
    assert result.outcome is PhoneHttpOutcome.UNREACHABLE
    assert "0.5" in result.detail
    assert time.monotonic() - started < 2.0


def test_vendor_without_http_dial_is_unsupported_at_once() -> None:
    result = asyncio.run(phone_http(PhoneTarget(vendor="gigaset", host="127.0.0.1"), "call", number="201"))
    assert result.outcome is PhoneHttpOutcome.UNSUPPORTED


@pytest.mark.parametrize("number", ["201@evil", "0721 405516", "12;CALLEND", "", "1" * 21, None])
def test_only_dial_digits_ever_reach_the_url(number: str | None) -> None:
    with pytest.raises(InvalidNumber):
        build_action_request(PhoneTarget(vendor="yealink", host="10.0.0.5"), "call", number=number)


@pytest.mark.parametrize("host", ["10.0.0.5/x", "user@10.0.0.5", "10.0.0.5:80", "", "a b"])
def test_bad_phone_host_is_refused(host: str) -> None:
    with pytest.raises(InvalidPhoneConfig):
        build_action_request(PhoneTarget(vendor="yealink", host=host), "call", number="201")


def test_each_vendor_builds_its_documented_url() -> None:
    urls = {
        vendor: build_action_request(
            PhoneTarget(vendor=vendor, host="192.0.2.10", password="p&w d"), "call", number="+390721405516"
        )
        for vendor in ("yealink", "snom", "fanvil", "grandstream")
    }
    assert urls["yealink"].url == "http://192.0.2.10/servlet?key=number=%2B390721405516"
    assert urls["snom"].url == "http://192.0.2.10/command.htm?number=%2B390721405516"
    assert urls["fanvil"].url == "http://192.0.2.10/cgi-bin/ConfigManApp.com?key=number=%2B390721405516"
    assert urls["grandstream"].url == (
        "http://192.0.2.10/cgi-bin/api-make_call?passcode=p%26w%20d&phonenumber=%2B390721405516"
    )
    assert "p%26w" not in urls["grandstream"].redacted_url
    assert (urls["yealink"].auth, urls["snom"].auth, urls["grandstream"].auth) == ("basic", "digest", "query")
    ipv6 = build_action_request(PhoneTarget(vendor="snom", host="::1", port=8080, scheme="https"), "dtmf", digits="1#")
    assert ipv6.url == "https://[::1]:8080/command.htm?key_dtmf=1%23"
