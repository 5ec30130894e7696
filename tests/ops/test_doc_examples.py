"""The docs' examples are true to the product: every fenced shell block (``sh``, ``bash``, ``shell``,
``console``) of README.md and docs/*.md runs as written against a real test server, with the
substitutions a reader makes for their own server (the table ``PLACEHOLDERS``) and the variables the
examples name (``$TOKEN``, ``$SESSION``, ``$PAT``, ``$SERVICE_TOKEN``). Each command exits 0 (curl gets
a 2xx) unless its comment shows another status (``# ... exits 1 while a check fails``). Each `callto ...`
command is also accepted by the command-line parser, and every fenced JSON block that is not abbreviated (no ``...``) is
valid JSON.

A block that cannot run here (other hosts, systemd, the Debian package, the whole test suite) says so in
the doc, right before its fence: ``<!-- not run: reason -->``. A single line of a block that cannot run
(``callto serve``: the test already runs the server) is named in the marker:
``<!-- not run "callto serve": reason -->``. The test prints what it ran and what it skipped, with the
reasons; a shell block with no marker must run.

Not yet: the JSON blocks (request bodies and answers) are checked for syntax only, not sent to the server.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from callto.cli import build_parser
from support.server import ROOT, Api, ServerProcess, admin_client, start_server

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
MARKER = re.compile(r'<!--[ \t]*not run(?:[ \t]+"([^"\n]+)")?:[ \t]*([^\n]*?)[ \t]*-->\s*\Z')
SHELL = ("sh", "bash", "shell", "console")


@dataclass
class Block:
    where: str  # doc:line of the fence
    kind: str
    text: str
    skip_reason: str | None  # the whole block is marked not run
    skip_lines: dict[str, str]  # line prefix -> reason


def _blocks(kinds: tuple[str, ...]) -> list[Block]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match.group(1) not in kinds:
                continue
            before = text[: match.start()]
            skip_reason, skip_lines = None, {}
            # markers right before the fence (one per line, nothing else in between)
            while (marker := MARKER.search(before)) is not None:
                if marker.group(1):
                    skip_lines[marker.group(1)] = marker.group(2)
                else:
                    skip_reason = marker.group(2)
                before = before[: marker.start()]
            where = f"{doc.relative_to(ROOT)}:{text[: match.start()].count(chr(10)) + 1}"
            found.append(Block(where, match.group(1), match.group(2), skip_reason, skip_lines))
    return found


def _commands() -> list[tuple[str, list[str]]]:
    commands = []
    for block in _blocks(SHELL):
        for raw in block.text.splitlines():
            line = raw.split(" #", 1)[0].strip().removeprefix("$ ").removeprefix("sudo ")
            if not line.startswith("callto ") or "<" in line:
                continue
            # a shell substitution is one word to the command: $(date +%F) -> X
            words = shlex.split(re.sub(r"\$\([^)]*\)", "X", line))[1:]
            commands.append((f"{block.where}: {line}", words))
    return commands


COMMANDS = _commands()


def test_the_docs_show_cli_commands() -> None:
    assert len(COMMANDS) >= 10, COMMANDS


@pytest.mark.parametrize(("where", "words"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_documented_cli_command_parses(where: str, words: list[str]) -> None:
    parser = build_parser()
    try:
        parser.parse_args(words)
    except SystemExit as exc:
        # --help and --version exit 0 after printing; anything else is a command the CLI does not have
        assert exc.code == 0, f"{where}: the command line refuses this example"


def test_unabbreviated_json_examples_are_valid_json() -> None:
    checked, skipped, bad = 0, 0, []
    for block in _blocks(("json",)):
        if "..." in block.text or "…" in block.text:
            skipped += 1
            continue
        checked += 1
        try:
            json.loads(block.text)
        except json.JSONDecodeError as exc:
            # a block may hold one JSON document per line (JSON lines)
            try:
                for line in filter(None, (line.strip() for line in block.text.splitlines())):
                    json.loads(line)
            except json.JSONDecodeError:
                bad.append(f"{block.where}: {exc}")
    print(f"JSON examples: {checked} checked, {skipped} abbreviated with '...' and not checked")
    assert checked > 0
    assert not bad, bad


# --- running the shell examples -------------------------------------------------------------------


@pytest.fixture(scope="module")
def doc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("docs") / "data"
    data.mkdir(mode=0o700)  # as `callto init` makes it: the CLI warns about an open data folder
    proc = start_server(data, f"sqlite:///{data / 'callto.db'}")
    try:
        yield proc
    finally:
        proc.stop()


def _placeholders(server: ServerProcess, workdir: Path, anna_id: int) -> list[tuple[str, str]]:
    """What a reader replaces in the examples with their own server's values (longest first)."""
    http, https = server.url, f"https://127.0.0.1:{server.https_port}"
    return [
        *[(f"http://{host}:8080", http) for host in ("callto", "pbx", "localhost", "127.0.0.1")],
        *[(f"https://{host}:8443", https) for host in ("callto", "pbx", "localhost", "127.0.0.1")],
        ("/var/backups/", f"{workdir}/"),  # a folder the reader may write
        ('"user_id": 7', f'"user_id": {anna_id}'),  # the provisioning example's user: anna
        ("ct_pat_Xb3kq...", '"$PAT"'),  # the secret of the token made in the line before
    ]


def _script(block: Block, placeholders: list[tuple[str, str]]) -> tuple[str, list[str]]:
    """The block as a bash script with the lines marked not run left out, and those lines."""
    kept, left_out = [], []
    for line in block.text.splitlines():
        reason = next((r for p, r in block.skip_lines.items() if line.lstrip("$ ").startswith(p)), None)
        if reason is not None:
            left_out.append(f"{block.where}: {line.split(' #', 1)[0].strip()!r}: {reason}")
            continue
        line = line.removeprefix("$ ")
        # a command whose comment says "exits N when/while ..." may end with that status (the doc shows it)
        if (status := re.search(r" #.*\bexits (\d+)\b", line)) is not None:
            line = f"{{ {line.split(' #', 1)[0].strip()} || [ $? -eq {status.group(1)} ]; }}"
        kept.append(line)
    script = "\n".join(kept)
    for old, new in placeholders:
        script = script.replace(old, new)
    # an HTTP error fails the example (curl alone exits 0 on a 4xx/5xx); -sS still shows curl's errors
    script = re.sub(r"(^|\s)curl ", r"\1curl --fail-with-body -sS ", script)
    return "set -eo pipefail\n" + script + "\n", left_out


def _token(admin: object, path: str, name: str) -> str:
    r = admin.post(path, json={"name": name, "scopes": ["calls:write", "history:read"]})  # type: ignore[attr-defined]
    assert r.status_code == 201, r.text
    return str(r.json()["secret"])


@pytest.mark.timeout(120)
def test_every_shell_example_runs_against_a_test_server(doc_server: ServerProcess, tmp_path: Path) -> None:
    blocks = _blocks(SHELL)
    workdir = tmp_path / "reader"
    workdir.mkdir()
    # the provisioning example's --cacert server.crt: the reader copies the server's certificate
    shutil.copy(doc_server.data_dir / "tls" / "server.crt", workdir / "server.crt")
    venv_bin = str(Path(sys.executable).parent)
    ran, skipped, failed = [], [], []
    with admin_client(doc_server.url) as first_admin:
        # the test works as an admin of its own: an example resets the password of `admin`
        first_admin.create_user("docs-admin", role="admin", password="docs-admin-secret-1")
        admin = Api(doc_server.url).login("docs-admin", "docs-admin-secret-1")
        # the users the examples name
        mrossi = admin.create_user("mrossi", extension="202")
        admin.add_device(mrossi["id"], "webphone")
        for block in blocks:
            if block.skip_reason is not None:
                skipped.append(f"{block.where}: {block.skip_reason}")
                continue
            # every block starts from the same state: anna exists, unless the block makes her
            listed = admin.get("/api/v1/admin/users")
            assert listed.status_code == 200, f"before {block.where}: {listed.text}"
            users = {u["username"]: u for u in listed.json()}
            # (a new anna each time: what one block gave her does not change the next block's answers)
            if "anna" in users:
                assert admin.delete(f"/api/v1/admin/users/{users.pop('anna')['id']}").status_code == 204
            if "user add anna" not in block.text:
                users["anna"] = admin.create_user("anna", extension="201")
            anna_id = users["anna"]["id"] if "anna" in users else 0
            script, left_out = _script(block, _placeholders(doc_server, workdir, anna_id))
            skipped += left_out
            env = {**doc_server.env(), "PATH": f"{venv_bin}:{os.environ['PATH']}",
                   "TOKEN": admin.token or "", "SESSION": admin.token or "",
                   "PAT": _token(admin, "/api/v1/me/tokens", f"pat{len(ran)}"),
                   "SERVICE_TOKEN": _token(admin, "/api/v1/admin/service-tokens", f"svc{len(ran)}")}
            result = subprocess.run(["bash", "-c", script], env=env, cwd=workdir, capture_output=True,
                                    text=True, timeout=30)
            ran.append(block.where)
            if result.returncode != 0:
                failed.append(f"{block.where} exited {result.returncode}:\n{script}\n"
                              f"stdout: {result.stdout[-1500:]}\nstderr: {result.stderr[-1500:]}")
    print(f"shell examples: {len(ran)} blocks ran, {len(skipped)} skipped (blocks or lines marked 'not run'):")
    for where in ran:
        print(f"  ran      {where}")
    for why in skipped:
        print(f"  not run  {why}")
    assert ran, "no shell example ran"
    assert not failed, "\n\n".join(failed)
