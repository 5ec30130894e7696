"""Header lookups stay right while a message is changed between reads.

``Headers`` keeps its lookup index up to date on every change instead of rebuilding it; each step here
compares every lookup with a fresh ``Headers`` built from the same lines.
"""

from __future__ import annotations

import random

from callto.sip.message import Headers

NAMES = ["Via", "v", "Route", "Contact", "m", "Call-ID", "i", "X-Custom", "Supported"]


def _assert_same_lookups(headers: Headers) -> None:
    fresh = Headers(list(headers))
    for name in NAMES:
        assert headers.get_all(name) == fresh.get_all(name), name
        assert headers.get(name) == fresh.get(name), name
        assert headers.get_list(name) == fresh.get_list(name), name
        assert (name in headers) == (name in fresh), name
        assert headers.count(name) == fresh.count(name), name


def test_lookups_follow_add_set_prepend_remove_and_top_via_rewrites() -> None:
    rng = random.Random(4475)
    headers = Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2")])
    for step in range(600):
        name = rng.choice(NAMES)
        value = f"value-{step}" if name not in ("Via", "v") else f"SIP/2.0/UDP h{step};branch=z9hG4bK{step}"
        op = rng.randrange(6)
        if op == 0:
            headers.add(name, value)
        elif op == 1:
            headers.set(name, value)
        elif op == 2:
            headers.prepend(name, value)
        elif op == 3:
            headers.remove(name)
        elif op == 4:
            headers.replace_first_element(name, value)
        if rng.random() < 0.7:  # most changes come after a read has built the index
            _assert_same_lookups(headers)
    _assert_same_lookups(headers)
