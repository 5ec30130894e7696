"""Fixtures for the SIP tests: a real SipServer on a background event loop, and the shared peer harness."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from sip_helpers import RunningServer, running_sip_server, torture_credentials  # noqa: E402

from support.fixtures import procs  # noqa: E402

__all__ = ["procs", "sip_server"]


@pytest.fixture
def sip_server() -> Iterator[RunningServer]:
    yield from running_sip_server(torture_credentials())
