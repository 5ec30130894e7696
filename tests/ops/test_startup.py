"""Clear start-up: each problem is one line naming the setting to change, with its own exit code, and
"callto is running at" appears only once every listener is bound."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ops.cli_support import cli_env
from support.server import ROOT, ServerProcess, free_port


def _serve(server: ServerProcess, timeout: float = 40, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callto", *args, "serve"], env=server.env(), capture_output=True, text=True,
        timeout=timeout, cwd=ROOT,
    )


def _one_clear_line(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert "Traceback" not in output, output
    assert "running at" not in output, output
    problem = [line for line in result.stderr.splitlines() if line.startswith("callto: ")]
    assert len(problem) == 1, output
    for word in words:
        assert word in problem[0], problem[0]


def _server(tmp_path: Path, **env: str) -> ServerProcess:
    return ServerProcess(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'callto.db'}",
                         env_extra=env)


def test_taken_http_port_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    server = _server(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", server.http_port))
        taken.listen()
        _one_clear_line(_serve(server), 5, "CALLTO_HTTP_PORT", str(server.http_port), "in use")


def test_taken_sip_port_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    server = _server(tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", server.sip_port))
        _one_clear_line(_serve(server), 5, "CALLTO_SIP_PORT", f"{server.sip_port}/UDP")


def test_data_folder_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    server = _server(tmp_path)
    server.data_dir.write_text("not a folder")
    _one_clear_line(_serve(server), 3, "CALLTO_DATA_DIR", "is not a folder")


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    server = _server(tmp_path)
    server.database_url = f"postgresql://postgres@127.0.0.1:{free_port()}/callto"
    _one_clear_line(_serve(server), 4, "CALLTO_DATABASE_URL", "cannot reach the database")


@pytest.mark.parametrize(
    ("setting", "value"),
    [("CALLTO_HTTP_PORT", "eighty"), ("CALLTO_SIP_PORT", "70000"), ("CALLTO_LOG_FORMAT", "xml"),
     ("CALLTO_LOG_LEVELS", "sip=loud")],
)
def test_bad_setting_is_one_line_naming_it(tmp_path: Path, setting: str, value: str) -> None:
    server = _server(tmp_path, **{setting: value})
    _one_clear_line(_serve(server, 20), 2, setting)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    server = _server(tmp_path)
    server.database_url = f"postgresql://postgres@127.0.0.1:{free_port()}/callto"
    result = _serve(server, 40, "--debug")
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_running_at_comes_after_every_listener_is_bound(tmp_path: Path) -> None:
    server = _server(tmp_path).start()
    try:
        # health answers as soon as HTTP is bound; the announcement follows once HTTPS is bound too
        deadline = time.monotonic() + 15
        while "callto is running at" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        log = server.log()
        assert "callto is running at" in log
        # the switch logs its listeners from the lifespan, before the announcement
        assert log.index("SIP listening on") < log.index("callto is running at"), log
        for port in (server.http_port, server.https_port):
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass
    finally:
        server.stop()


def test_serve_help_lists_the_settings_and_exit_codes() -> None:
    result = subprocess.run([sys.executable, "-m", "callto", "serve", "--help"], capture_output=True, text=True,
                            env=cli_env(Path("/nonexistent"), "sqlite://"), timeout=30, cwd=ROOT)
    assert result.returncode == 0
    for name in ("CALLTO_DATA_DIR", "CALLTO_HTTP_PORT", "CALLTO_DATABASE_URL", "CALLTO_LOG_FORMAT",
                 "CALLTO_LOG_LEVELS", "CALLTO_METRICS_ALLOW", "exit codes"):
        assert name in result.stdout, result.stdout
