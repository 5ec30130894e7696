"""The docs' examples are true to the product, as far as they can be checked here without a network:
every `callto ...` command in a fenced shell block of README.md and docs/*.md is accepted by the real
command-line parser (so no command or option the docs show is missing or renamed), and every fenced JSON
block that is not abbreviated (no ``...``) is valid JSON.

Not yet: running each example against a test server (curl bodies, API answers); examples with
placeholders (``$TOKEN``, ``...``) would need marking in the docs first.
"""

from __future__ import annotations

import json
import re
import shlex

import pytest

from callto.cli import build_parser
from support.server import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def _blocks(kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for match in FENCE.finditer(doc.read_text(encoding="utf-8")):
            if match.group(1) in kinds:
                found.append((f"{doc.relative_to(ROOT)}", match.group(2)))
    return found


def _commands() -> list[tuple[str, list[str]]]:
    commands = []
    for where, block in _blocks(("sh", "bash", "shell", "console")):
        for raw in block.splitlines():
            line = raw.split(" #", 1)[0].strip().removeprefix("$ ").removeprefix("sudo ")
            if not line.startswith("callto ") or "<" in line:
                continue
            # a shell substitution is one word to the command: $(date +%F) -> X
            words = shlex.split(re.sub(r"\$\([^)]*\)", "X", line))[1:]
            commands.append((f"{where}: {line}", words))
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
    for where, block in _blocks(("json",)):
        if "..." in block or "…" in block:
            skipped += 1
            continue
        checked += 1
        try:
            json.loads(block)
        except json.JSONDecodeError as exc:
            # a block may hold one JSON document per line (JSON lines)
            try:
                for line in filter(None, (line.strip() for line in block.splitlines())):
                    json.loads(line)
            except json.JSONDecodeError:
                bad.append(f"{where}: {exc}")
    print(f"JSON examples: {checked} checked, {skipped} abbreviated with '...' and not checked")
    assert checked > 0
    assert not bad, bad
