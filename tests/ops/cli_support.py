"""Running ``callto`` commands on a test server's data, and one digest-authenticated REGISTER with sipp."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.server import ROOT, ServerProcess
from support.sipp import SippResult, run_sipp

REGISTER_SCENARIO = ROOT / "tests" / "sip" / "scenarios" / "register_auth.xml"


def cli_env(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLTO_")}
    env.update(CALLTO_DATA_DIR=str(data_dir), CALLTO_DATABASE_URL=database_url, **extra)
    return env


def callto(data_dir: Path, database_url: str, *args: str, timeout: float = 60,
           **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callto", *args], env=cli_env(data_dir, database_url, **extra),
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )


def callto_on(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """A CLI command on the data of a running server (same data folder, database and ports)."""
    env = {k[len("CALLTO_"):]: v for k, v in server.env().items()
           if k.startswith("CALLTO_") and k not in ("CALLTO_DATA_DIR", "CALLTO_DATABASE_URL")}
    return callto(server.data_dir, server.database_url, *args, **{f"CALLTO_{k}": v for k, v in env.items()})


def sip_register(server: ServerProcess, username: str, password: str, workdir: Path) -> SippResult:
    """One REGISTER with digest authentication against the server's switch, over UDP."""
    workdir.mkdir(parents=True, exist_ok=True)
    inject = workdir / "users.csv"
    domain = server.env()["CALLTO_SIP_DOMAIN"]
    inject.write_text(
        f"SEQUENTIAL\n{username};[authentication username={username} password={password}];{domain}\n"
    )
    return run_sipp(REGISTER_SCENARIO, f"127.0.0.1:{server.sip_port}", workdir, inject_csv=inject, timeout=5)
