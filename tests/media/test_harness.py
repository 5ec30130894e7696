"""The shared harness itself: tones, processes, sipp, network namespaces."""

from __future__ import annotations

import subprocess
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from support import netns
from support.baresip import Account, BaresipError
from support.fixtures import BaresipFactory
from support.ports import free_port
from support.procs import ProcessError, process_group
from support.rtp import ULAW_DECODE, ulaw_encode
from support.sipp import run_sipp, start_sipp
from support.tone import audible_seconds, dominant_frequency, has_tone, write_tone_wav

SCENARIOS = Path(__file__).parent / "scenarios"


@pytest.mark.parametrize("rate", [8000, 48000])
@pytest.mark.parametrize("frequency", [440.0, 1000.0])
def test_tone_is_found_at_its_frequency(tmp_path: Path, rate: int, frequency: float) -> None:
    path = write_tone_wav(tmp_path / "t.wav", frequency, seconds=1.0, rate=rate)
    assert has_tone(path, frequency)
    assert not has_tone(path, 1000.0 if frequency == 440.0 else 440.0)


def test_leading_silence_is_ignored(tmp_path: Path) -> None:
    tone = write_tone_wav(tmp_path / "t.wav", 1000.0, seconds=1.0)
    with wave.open(str(tone), "rb") as src:
        frames = src.readframes(src.getnframes())
    padded = tmp_path / "padded.wav"
    with wave.open(str(padded), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 8000 * 3 + frames)
    assert abs(audible_seconds(padded) - 1.0) < 0.05
    assert dominant_frequency(padded) == pytest.approx(1000.0, abs=5)


def test_silence_has_no_tone(tmp_path: Path) -> None:
    path = write_tone_wav(tmp_path / "quiet.wav", 440.0, seconds=1.0, amplitude=0.0)
    assert dominant_frequency(path) is None
    assert not has_tone(path, 440.0)


def test_ulaw_round_trip_keeps_the_signal() -> None:
    samples = (np.sin(np.arange(800) / 5) * 20000).astype(np.int16)
    decoded = ULAW_DECODE[np.frombuffer(ulaw_encode(samples), dtype=np.uint8)].astype(np.float64)
    error = np.abs(decoded - samples)
    assert float(np.max(error / (np.abs(samples) + 64))) < 0.07


def test_process_group_kills_everything_even_when_the_test_fails(tmp_path: Path) -> None:
    pids: list[int] = []
    with pytest.raises(RuntimeError), process_group(tmp_path) as group:
        proc = group.start(["sh", "-c", "echo ready; sleep 60 & wait"], name="sleeper")
        proc.wait_for_output("ready", timeout=5)
        pids.append(proc.pid)
        raise RuntimeError("the test failed")
    time.sleep(0.1)
    assert not Path(f"/proc/{pids[0]}").exists() or "Z" in Path(f"/proc/{pids[0]}/stat").read_text().split()[2]
    assert "ready" in (tmp_path / "sleeper-0.log").read_text()


def test_waiting_for_output_fails_with_the_log_tail(tmp_path: Path) -> None:
    with process_group(tmp_path) as group:
        proc = group.start(["sh", "-c", "echo boom; exit 3"], name="dies")
        with pytest.raises(ProcessError, match="boom"):
            proc.wait_for_output("never printed", timeout=5)


def test_sipp_options_scenario_gets_200_from_baresip(
    baresip_factory: BaresipFactory, tone_440: Path, tmp_path: Path
) -> None:
    phone = baresip_factory("pingme", tone_440)
    inject = tmp_path / "users.csv"
    inject.write_text("SEQUENTIAL\npingme;\n")
    result = run_sipp(
        SCENARIOS / "options.xml", f"127.0.0.1:{phone.sip_port}", tmp_path / "sipp", inject_csv=inject, timeout=15
    )
    assert result.ok, result.describe()
    assert result.counter("SuccessfulCall") == 1
    assert "OPTIONS sip:pingme@127.0.0.1" in result.messages()


def test_sipp_reports_failure_when_nobody_answers(tmp_path: Path) -> None:
    inject = tmp_path / "users.csv"
    inject.write_text("SEQUENTIAL\nnobody;\n")
    result = run_sipp(
        SCENARIOS / "options.xml", f"127.0.0.1:{free_port('udp')}", tmp_path / "sipp", inject_csv=inject, timeout=3
    )
    assert not result.ok
    assert result.returncode != 0


def test_netns_command_sees_only_loopback() -> None:
    reason = netns.netns_unavailable_reason()
    if reason is not None:
        pytest.fail(f"cannot create a network namespace here: {reason}")
    out = subprocess.run(
        netns.netns_command(["python3", "-c", "import socket; print([n for _, n in socket.if_nameindex()])"]),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.stdout.strip() == "['lo']", out.stderr


@pytest.mark.parametrize(("password", "registered"), [("s3cret", True), ("wrong", False)])
def test_baresip_registers_with_digest_auth_through_an_outbound_proxy(
    baresip_factory: BaresipFactory, tone_440: Path, tmp_path: Path, password: str, registered: bool
) -> None:
    inject = tmp_path / "creds.csv"
    inject.write_text("SEQUENTIAL\n201;s3cret;\n")
    registrar = start_sipp(SCENARIOS / "registrar.xml", None, tmp_path / "sipp", inject_csv=inject, timeout=15)
    try:
        account = Account(aor="sip:201@callto.test", password=password, outbound=f"sip:127.0.0.1:{registrar.port}")
        phone = baresip_factory("desk", tone_440, account=account)
        if registered:
            phone.wait_registered(timeout=10)
        else:
            with pytest.raises(BaresipError, match="403"):
                phone.wait_registered(timeout=10)
        result = registrar.finish(timeout=10)
    finally:
        registrar.kill()
    assert 'username="201"' in result.messages()
    if registered:
        assert result.ok, result.describe()
