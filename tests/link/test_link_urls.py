"""Real-world links and selections -> the number Link sends to the server, or a clear refusal."""

from __future__ import annotations

import pytest

from callto.link.errors import InvalidLink
from callto.link.urls import extract

ACCEPTED = [
    # RFC 3966 tel: with visual separators, extension, phone-context
    ("tel:+39-0721-405516", "+390721405516"),
    ("tel:+390721405516;ext=23", "+390721405516;ext=23"),
    ("tel:0721405516;phone-context=+39", "+390721405516"),
    ("tel:201;phone-context=example.com", "201"),
    ("tel:%2B39%20071%20123456", "+39071123456"),
    ("tel:+39.0721.405516", "+390721405516"),
    ("tel:+39 (0721) 40 55 16", "+390721405516"),
    # tel:// as some web pages write it, uppercase schemes, trailing slashes
    ("tel://+390721405516", "+390721405516"),
    ("tel://0721405516/", "0721405516"),
    ("TEL:+390721405516", "+390721405516"),
    ("Tel:0721-405516", "0721405516"),
    # callto: (Skype-era links) with the + encoded, with //, with trailing slash or query
    ("callto:+390721405516", "+390721405516"),
    ("callto:%2B390721405516", "+390721405516"),
    ("callto://0721405516", "0721405516"),
    ("callto://%2B39%200721%20405516/", "+390721405516"),
    ("CALLTO://+390721405516/", "+390721405516"),
    ("callto:0721405516?call", "0721405516"),
    # sip:
    ("sip:201@pbx.example.com", "201"),
    ("sip:+390721405516@pbx.example.com;user=phone", "+390721405516"),
    ("SIPS:201@pbx.example.com", "201"),
    # free text (selected or copied)
    ("+39 (0721) 40 55 16", "+390721405516"),
    ("0721/405516", "0721405516"),
    ("201", "201"),
    ("  +39 0721 405516\n", "+390721405516"),
    ("+39\u00a00721\u00a0405516", "+390721405516"),
    ("0721 405516 ext. 12", "0721405516;ext=12"),
    ("*21#", "*21#"),
]


@pytest.mark.parametrize(("raw", "target"), ACCEPTED)
def test_real_world_link_gives_the_number(raw: str, target: str) -> None:
    assert extract(raw).target == target


REJECTED = [
    ("", "empty"),
    ("   ", "empty"),
    ("tel:", "no number"),
    ("callto://", "no number"),
    ("tel:call-me-maybe", "not a phone number"),
    ("mailto:someone@example.com", "not a phone number"),
    ("tel:+39 0721\r\nINVITE sip:evil", "line breaks"),
    ("tel:123%0D%0AVia: x", "line breaks"),
    ("tel:1234567890123456789012345678901234567890", "at most 20"),
    ("sip:pbx.example.com", "number before '@'"),
    ("sip:alice@pbx.example.com", "not a phone number"),
    ("tel:39+0721", "may only start"),
    ("x" * 300, "too long"),
]


@pytest.mark.parametrize(("raw", "why"), REJECTED)
def test_garbage_is_refused_with_a_clear_reason(raw: str, why: str) -> None:
    with pytest.raises(InvalidLink) as info:
        extract(raw)
    assert why in info.value.message
    assert info.value.error == "invalid-number"
