"""Digest authentication: RFC 7616 test vectors, stateless nonces, stale, replays, bounded memory, client."""

from __future__ import annotations

from callto.sip.auth import DigestClient, DigestServer, NonceCounter, Verdict, compute_response
from callto.sip.grammar import parse_auth

# RFC 7616 section 3.9.1
VECTOR = {
    "username": "Mufasa",
    "realm": "http-auth@example.org",
    "password": "Circle of Life",
    "method": "GET",
    "uri": "/dir/index.html",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "nc": "00000001",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    "qop": "auth",
}


def test_rfc7616_md5_vector() -> None:
    assert compute_response(algorithm="MD5", **VECTOR) == "8ca523f5e9506fed4657c9700eebdbec"


def test_rfc7616_sha256_vector() -> None:
    assert (
        compute_response(algorithm="SHA-256", **VECTOR)
        == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    )


PASSWORDS = {"201": "s3cret"}


def _lookup(username: str) -> str | None:
    return PASSWORDS.get(username)


def _answer(server: DigestServer, now: float, *, password: str = "s3cret", algorithm: str = "SHA-256") -> str:
    challenges = [c for c in server.challenges(now) if f"algorithm={algorithm}" in c]
    value = DigestClient("201", password).authorization(challenges, "REGISTER", "sip:pbx.test")
    assert value is not None
    return value


def test_challenges_offer_sha256_before_md5_with_one_nonce() -> None:
    server = DigestServer("pbx.test")
    first, second = server.challenges(100.0)
    assert "algorithm=SHA-256" in first and "algorithm=MD5" in second
    assert parse_auth(first, "WWW-Authenticate")[1]["nonce"] == parse_auth(second, "WWW-Authenticate")[1]["nonce"]
    assert parse_auth(first, "WWW-Authenticate")[1]["qop"] == "auth"


def test_both_algorithms_verify() -> None:
    server = DigestServer("pbx.test")
    for algorithm in ("SHA-256", "MD5"):
        auth = _answer(server, 100.0, algorithm=algorithm)
        assert server.verify(auth, "REGISTER", _lookup, now=101.0).verdict is Verdict.OK


def test_client_prefers_sha256_when_both_are_offered() -> None:
    server = DigestServer("pbx.test")
    value = DigestClient("201", "s3cret").authorization(list(reversed(server.challenges(1.0))), "INVITE", "sip:x")
    assert value is not None and "algorithm=SHA-256" in value


def test_wrong_password_is_forbidden() -> None:
    server = DigestServer("pbx.test")
    auth = _answer(server, 100.0, password="wrong")
    assert server.verify(auth, "REGISTER", _lookup, now=101.0).verdict is Verdict.FORBIDDEN


def test_expired_nonce_with_right_password_is_stale() -> None:
    server = DigestServer("pbx.test", lifetime=30.0)
    auth = _answer(server, 100.0)
    assert server.verify(auth, "REGISTER", _lookup, now=131.0).verdict is Verdict.STALE
    assert "stale=true" in server.challenges(131.0, stale=True)[0]


def test_replayed_nonce_count_is_refused() -> None:
    server = DigestServer("pbx.test")
    auth = _answer(server, 100.0)
    assert server.verify(auth, "REGISTER", _lookup, now=101.0).verdict is Verdict.OK
    result = server.verify(auth, "REGISTER", _lookup, now=102.0)
    assert result.verdict is Verdict.FORBIDDEN and "replayed" in result.reason


def test_nonce_from_another_server_is_rechallenged() -> None:
    auth = _answer(DigestServer("pbx.test"), 100.0)
    assert DigestServer("pbx.test").verify(auth, "REGISTER", _lookup, now=101.0).verdict is Verdict.CHALLENGE


def test_missing_or_foreign_scheme_is_challenged_and_garbage_is_bad_request() -> None:
    server = DigestServer("pbx.test")
    assert server.verify(None, "REGISTER", _lookup, now=1.0).verdict is Verdict.CHALLENGE
    assert server.verify("NoOneKnowsThisScheme opaque-data=here", "REGISTER", _lookup, now=1.0).verdict is (
        Verdict.CHALLENGE
    )
    assert server.verify('Digest username="201", realm=', "REGISTER", _lookup, now=1.0).verdict is (Verdict.BAD_REQUEST)


def test_nonce_table_is_bounded_and_forgotten_nonces_cannot_be_replayed() -> None:
    server = DigestServer("pbx.test", max_tracked_nonces=3)
    first = _answer(server, 10.0)
    assert server.verify(first, "REGISTER", _lookup, now=10.5).verdict is Verdict.OK
    for i in range(5):
        later = _answer(server, 20.0 + i)
        assert server.verify(later, "REGISTER", _lookup, now=20.5 + i).verdict is Verdict.OK
    assert len(server.counter) <= 3
    # the first nonce was evicted: its replay must not pass as new
    assert server.verify(first, "REGISTER", _lookup, now=30.0).verdict is Verdict.FORBIDDEN


def test_nonce_counter_requires_increasing_counts() -> None:
    counter = NonceCounter()
    assert counter.accept("n", 1.0, 1)
    assert counter.accept("n", 1.0, 2)
    assert not counter.accept("n", 1.0, 2)
