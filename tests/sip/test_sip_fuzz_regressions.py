"""The atheris fuzzer's findings stay fixed: every saved input under ``fuzz_regressions/`` is replayed
through the harness's one-input function (a crash there is a regression), and a short coverage-guided
smoke run (``make fuzz`` runs it for minutes) finds nothing new."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from sip_fuzz_harness import REGRESSIONS, SEEDS, Target, one_input

HARNESS = Path(__file__).resolve().parent / "sip_fuzz_harness.py"
CASES = sorted(p for p in REGRESSIONS.glob("*") if p.is_file() and p.suffix != ".md" and not p.name.startswith("."))


@pytest.mark.parametrize("case", CASES or [None], ids=[p.name for p in CASES] or ["seeds"])
def test_saved_fuzz_cases_and_seeds_go_through_parser_and_endpoint_without_a_crash(case: Path | None) -> None:
    target = Target()
    inputs = [case.read_bytes()] if case is not None else SEEDS
    for data in inputs:
        one_input(data, target)


@pytest.mark.timeout(60)
def test_a_short_atheris_run_over_the_parser_and_endpoint_finds_no_crash(tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        print("atheris is not installed (pip install atheris: the dev extra)")
        pytest.skip("atheris is not installed (the dev extra)")
    run = subprocess.run(
        [sys.executable, str(HARNESS), "-max_total_time=15", f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"],
        capture_output=True, text=True, timeout=50, cwd=tmp_path,
    )
    found = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert run.returncode == 0 and not found, (found, run.stderr[-3000:])
    assert "Done " in run.stderr, run.stderr[-2000:]  # it really ran
