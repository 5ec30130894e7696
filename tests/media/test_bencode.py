"""The ng wire format: strict bencode."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callto.media import bencode

values: st.SearchStrategy[Any] = st.recursive(
    st.binary(max_size=40) | st.integers(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.binary(max_size=10), children, max_size=5),
    max_leaves=30,
)


@given(values)
def test_any_value_survives_a_round_trip(value: Any) -> None:
    assert bencode.decode(bencode.encode(value)) == value


@given(values)
def test_encoding_is_canonical(value: Any) -> None:
    data = bencode.encode(value)
    assert bencode.encode(bencode.decode(data)) == data


def test_ng_ping_encodes_as_rtpengine_expects() -> None:
    assert bencode.encode({"command": "ping"}) == b"d7:command4:pinge"


def test_dictionary_keys_are_sorted_and_str_becomes_utf8() -> None:
    assert bencode.encode({"b": 1, "a": ["x", "é"]}) == b"d1:al1:x2:\xc3\xa9e1:bi1ee"


def test_to_text_turns_a_reply_into_str() -> None:
    reply = bencode.decode(b"d6:result2:ok3:sdp3:v=0e")
    assert bencode.to_text(reply) == {"result": "ok", "sdp": "v=0"}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"i",
        b"ie",
        b"i-e",
        b"i03e",
        b"i-0e",
        b"i1x2e",
        b"03:abc",
        b"-1:a",
        b"5:abc",
        b"l",
        b"li1e",
        b"d",
        b"d1:a",
        b"di1ei2ee",
        b"d1:ai1e1:ai2ee",
        b"i1ei2e",
        b"x",
        b"l" * 100 + b"e" * 100,
    ],
)
def test_malformed_input_is_rejected(data: bytes) -> None:
    with pytest.raises(bencode.BencodeError):
        bencode.decode(data)


def test_unsorted_keys_are_accepted_because_rtpengine_sends_them() -> None:
    reply = b"d3:sdp3:v=06:result2:oke"
    assert bencode.decode(reply) == {b"sdp": b"v=0", b"result": b"ok"}
    with pytest.raises(bencode.BencodeError):
        bencode.decode(reply, canonical=True)


@given(st.binary(max_size=60))
def test_arbitrary_bytes_decode_canonically_or_raise_bencode_error(data: bytes) -> None:
    try:
        value = bencode.decode(data, canonical=True)
    except bencode.BencodeError:
        return
    assert bencode.encode(value) == data


@pytest.mark.parametrize("value", [True, 1.5, None, {1: 2}, object()])
def test_values_bencode_cannot_carry_are_refused(value: object) -> None:
    with pytest.raises(bencode.BencodeError):
        bencode.encode(value)
