"""Schemathesis over the live OpenAPI spec of a real server: no input gives a 5xx, and every answer is one the
spec lists, in the shape it documents. Run as an administrator and as a plain user, on SQLite and
PostgreSQL (a throwaway schema per module).

The run is bounded (a fixed seed, two examples per operation, no coverage phase: see ``DEEP``) so the four
runs stay within about a minute together.

What is left out, and why (nothing else is):
- ``POST /api/v1/auth/logout``: it ends the run's own session, so every later case would only see the 401.
  Its behaviour is covered in test_api.py.
- see schemathesis_hooks.py: the run's own account is never reset, demoted or deleted (same reason), and
  trunks and card sources are pointed at 127.0.0.1 so that nothing leaves this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.server import ADMIN_PASSWORD, Api, ServerProcess

HERE = Path(__file__).resolve().parent
ST = Path(sys.executable).with_name("st")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
MAX_EXAMPLES = 2
# The coverage phase sends each parameter's boundary values (ids of 20 digits, empty strings, the limits of
# every range) and finds most 5xx, but takes minutes over 85 operations: the suite fuzzes, and
# test_api_bad_ids.py sends those boundary ids to every id route itself. CALLTO_SCHEMATHESIS_DEEP=1 runs
# the coverage phase too, with more examples (about 5 minutes).
DEEP = bool(os.environ.get("CALLTO_SCHEMATHESIS_DEEP"))
PHASES = "examples,coverage,fuzzing" if DEEP else "examples,fuzzing"
RUN_TIMEOUT = 600 if DEEP else 150


def _accounts(server: ServerProcess) -> dict[str, tuple[int, str]]:
    """A fresh administrator and a fresh plain user (id, token), both logged in before any fuzzing: the
    fuzzed logins may trip the per-address login throttle for the rest of the window."""
    anon = Api(server.url)
    root = anon.login("admin", ADMIN_PASSWORD)
    stamp = f"{time.monotonic_ns() % 10**8}"
    out = {}
    for role in ("admin", "user"):
        user = root.create_user(f"st{role}{stamp}", role=role)
        out[role] = (int(user["id"]), anon.login(user["username"], "password-123").token or "")
    anon.close()
    root.close()
    return out


@pytest.fixture(scope="module")
def accounts(shared_server: ServerProcess) -> dict[str, tuple[int, str]]:
    return _accounts(shared_server)


def run_schemathesis(
    server: ServerProcess, user_id: int, token: str, report: Path, checks: str = CHECKS,
    phases: str = PHASES, max_examples: int = 20 if DEEP else MAX_EXAMPLES,
) -> dict[str, object]:
    """One bounded schemathesis run: failures by check, cases run and the tail of its output."""
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "CALLTO_ST_OWN_USER_ID": str(user_id),
    }
    argv = [
        str(ST), "run", f"{server.url}/api/v1/openapi.json",
        "-H", f"Authorization: Bearer {token}",
        "--checks", checks,
        "--max-examples", str(max_examples),
        "--seed", "16",
        "--phases", phases,
        "--workers", "2",
        "--exclude-path", "/api/v1/auth/logout",
        "--suppress-health-check", "all",
        "--request-timeout", "10",
        "--report", "ndjson",
        "--report-ndjson-path", str(report),
        "--no-color",
    ]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=report.parent)
    summary = _failures(report)
    summary["output"] = result.stdout[-6000:] + result.stderr[-2000:]
    summary["exit"] = result.returncode
    return summary


def _failures(report: Path) -> dict[str, object]:
    """Failures in the run's NDJSON events: how many per check (and scenarios that errored), with a few
    samples to show."""
    by_check: dict[str, int] = {}
    samples: list[str] = []
    cases = 0
    events = [json.loads(line) for line in report.read_text().splitlines()]
    # CPython 3.11's "AST constructor recursion depth mismatch" (a CPython bug) can hit the fuzzer's own
    # process when it compiles deeply nested generated objects on two worker threads: an error of the
    # tool, not an answer of the server; any other error (a refused connection, a crash) still counts.
    tool_bugs = {
        str(e["NonFatalError"].get("label")) for e in events if "NonFatalError" in e
        and "recursion depth mismatch" in str(e["NonFatalError"].get("value", {}).get("message"))
    }
    for event in events:
        finished = event.get("ScenarioFinished")
        if not finished:
            continue
        recorder = finished.get("recorder") or {}
        cases += len(recorder.get("cases") or {})
        if finished.get("status") == "error" and recorder.get("label") not in tool_bugs:
            by_check["error"] = by_check.get("error", 0) + 1
            errors = [json.dumps(e["NonFatalError"])[:400] for e in events if "NonFatalError" in e]
            samples.append(f"error in {recorder.get('label')}: {errors[:3]}")
        for checks in (recorder.get("checks") or {}).values():
            for check in checks:
                if check.get("status") != "failure":
                    continue
                name = str(check.get("name"))
                by_check[name] = by_check.get(name, 0) + 1
                if len(samples) < 10:
                    samples.append(f"{recorder.get('label')}: {name}: {json.dumps(check)[:700]}")
    return {"by_check": by_check, "samples": samples, "cases": cases}


@pytest.mark.timeout(RUN_TIMEOUT + 120)  # the module's server starts inside the first test's time
@pytest.mark.parametrize("role", ["admin", "user"])
def test_fuzzed_requests_get_no_server_error_and_only_documented_answers(
    shared_server: ServerProcess, accounts: dict[str, tuple[int, str]], role: str, tmp_path: Path
) -> None:
    user_id, token = accounts[role]
    summary = run_schemathesis(shared_server, user_id, token, tmp_path / "events.ndjson")
    print(f"schemathesis as {role}: {summary['cases']} cases, failures by check: {summary['by_check']}")
    assert summary["cases"], f"schemathesis ran no case:\n{summary['output']}"
    assert summary["by_check"] == {}, "\n".join(map(str, summary["samples"])) + "\n" + str(summary["output"])
    # The session survived the run: the cases were tested as the caller, not as an anonymous 401.
    assert Api(shared_server.url, token).get("/api/v1/me").status_code == 200
