"""Nodes that share the nonce key accept each other's digest challenges (a phone challenged by one node
may answer to another behind the edge); nodes that do not, do not."""

from __future__ import annotations

from callto.sip.auth import DigestServer


def test_a_nonce_from_one_node_is_authentic_at_another_with_the_same_key() -> None:
    a = DigestServer("callto.test", b"k" * 48)
    b = DigestServer("callto.test", b"k" * 48)
    nonce = a.make_nonce(1000.0)
    authentic, issued = b.check_nonce(nonce, 1001.0)
    assert authentic and issued == 1000.0
    assert a.opaque == b.opaque
    assert a.challenges(1000.0)[0].split("opaque=")[1] == b.challenges(1000.0)[0].split("opaque=")[1]


def test_a_nonce_from_a_node_with_another_key_is_refused() -> None:
    a = DigestServer("callto.test", b"k" * 48)
    other = DigestServer("callto.test", b"x" * 48)
    assert other.check_nonce(a.make_nonce(1000.0), 1001.0)[0] is False
    assert a.opaque != other.opaque
