"""pytest fixtures for the whole suite; import them in a conftest: ``from support.fixtures import *``.

- ``procs``: a :class:`~support.procs.ProcessGroup` whose processes are all killed at teardown.
- ``rtpengine``: a real rtpengine (via callto's supervisor) on 127.0.0.1 for one test.
- ``tone_440`` / ``tone_1000``: 10 s 8 kHz tone WAVs.
- ``baresip_factory``: ``baresip_factory(name, tone_wav, account=None)`` -> started :class:`Baresip`.
- ``throwaway_pg``: a PostgreSQL server of the test's own (outage tests stop and start it), and
  ``throwaway_pg_server``: a ``callto serve`` on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support import postgres
from support.baresip import Account, Baresip
from support.procs import ProcessGroup, process_group
from support.rtpengine import RtpengineHandle, running_rtpengine
from support.server import ServerProcess, start_server
from support.tone import write_tone_wav

__all__ = ["baresip_factory", "procs", "rtpengine", "throwaway_pg", "throwaway_pg_server", "tone_440", "tone_1000"]


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[ProcessGroup]:
    with process_group(tmp_path / "logs") as group:
        yield group


@pytest.fixture
def rtpengine(tmp_path: Path) -> Iterator[RtpengineHandle]:
    with running_rtpengine(tmp_path / "rtpengine") as handle:
        yield handle


@pytest.fixture
def tone_440(tmp_path: Path) -> Path:
    return write_tone_wav(tmp_path / "tone-440.wav", 440.0, seconds=20.0)


@pytest.fixture
def tone_1000(tmp_path: Path) -> Path:
    return write_tone_wav(tmp_path / "tone-1000.wav", 1000.0, seconds=20.0)


@pytest.fixture
def throwaway_pg() -> Iterator[postgres.ThrowawayPostgres]:
    reason = postgres.missing_reason()
    if reason is not None:
        pytest.skip(f"cannot start a throwaway PostgreSQL: {reason}")
    with postgres.throwaway_postgres() as server:
        yield server


@pytest.fixture
def throwaway_pg_server(throwaway_pg: postgres.ThrowawayPostgres, tmp_path: Path) -> Iterator[ServerProcess]:
    proc = start_server(tmp_path / "data", throwaway_pg.url)
    try:
        yield proc
    finally:
        proc.stop()


BaresipFactory = Callable[..., Baresip]


@pytest.fixture
def baresip_factory(tmp_path: Path, procs: ProcessGroup) -> Iterator[BaresipFactory]:
    phones: list[Baresip] = []

    def make(name: str, tone_wav: Path, account: Account | None = None, answermode: str = "auto") -> Baresip:
        phone = Baresip(tmp_path, procs, name=name, tone_wav=tone_wav, account=account, answermode=answermode)
        phones.append(phone)
        return phone.start()

    yield make
    for phone in phones:
        phone.stop()
