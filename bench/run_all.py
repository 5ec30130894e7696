"""``make bench``: runs every benchmark, prints each result, and writes ``bench/RESULTS.md``.

Owns the order, the time budget and the report. Benchmarks: 1 registrations (callto on asyncio, callto on
uvloop, Kamailio), 2 calls through the B2BUA (Kamailio stateful proxy beside it), 3 click-to-call latency,
4 event fan-out, 5 phonebook search (``bench/phonebook_search.py``, owned by the phonebook, run as a
subprocess and summarized here), 6 the web CTI's cold first load (``bench/web_first_load.py``), 7 what the
Kamailio edge in front of two nodes costs per registration and per call (``bench/edge.py``). One that
cannot run prints ``not measured: <reason>`` rather than a number. Each result says what it measured, the
load offered, and the reference measured in the same run; the report carries the date, the machine and
its load average (other work on the machine skews every number here: run it on a quiet machine).

Usage: ``.venv/bin/python bench/run_all.py [--quick] [--only 1,2,3,4,6,7,5] [--no-write]``
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH, ROOT, Result, machine, machine_line

BUDGET_SECONDS = 900  # bench 7 (the edge) added ~5 min
PHONEBOOK = BENCH / "phonebook_search.py"
PHONEBOOK_MIN_SECONDS = 150  # loading 100,000 contacts alone takes a minute or more per backend


def say(text: str) -> None:
    print(text, flush=True)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


# --- 5: phonebook search, from the phonebook's own script --------------------------------------------------
_ROW = re.compile(r"^(?P<name>\S.*?)\s{2,}(?P<p50>\d+\.\d+)\s+(?P<p99>\d+\.\d+)(?:\s+(?P<hits>\d+))?\s*$")
NAME_QUERIES = ("name prefix", "surname prefix", "two words", "company word")
NUMBER_QUERIES = ("number,",)
TARGET_SEARCH_P99_MS = 50.0


def parse_phonebook(output: str) -> dict[str, dict[str, tuple[float, float]]]:
    """{backend: {query: (p50, p99)}} from phonebook_search.py's tables."""
    backends: dict[str, dict[str, tuple[float, float]]] = {}
    current: str | None = None
    for line in output.splitlines():
        head = re.match(r"^(SQLite|PostgreSQL): loaded", line)
        if head:
            current = head.group(1)
            backends[current] = {}
            continue
        row = _ROW.match(line)
        if current and row and not line.startswith("query"):
            backends[current][row.group("name").strip()] = (float(row.group("p50")), float(row.group("p99")))
    return backends


def run_phonebook(contacts: int, rounds: int, timeout: float) -> list[Result]:
    res = Result(
        "5. Phonebook search",
        "p50/p99 of PhonebookService.search (the function behind GET /api/v1/phonebook?q=, called in-process, "
        "no HTTP) for name prefixes and for number fragments",
        f"{contacts:,} contacts, {rounds} queries per kind, one at a time, SQLite and PostgreSQL (when reachable)",
    )
    if not PHONEBOOK.exists():
        res.verdict = "not measured: bench/phonebook_search.py does not exist"
        return [res]
    argv = [sys.executable, str(PHONEBOOK), "--contacts", str(contacts), "--rounds", str(rounds)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            start_new_session=True)
    cut = False
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGINT lets it drop its PostgreSQL schema on the way out; what it printed so far still counts
        cut = True
        os.killpg(proc.pid, signal.SIGINT)
        try:
            stdout, stderr = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
    if proc.returncode != 0 and not cut:
        res.verdict = f"not measured: phonebook_search.py exited {proc.returncode}: {stderr.strip()[-300:]}"
        return [res]
    if cut:
        res.notes.append(f"phonebook_search.py was stopped after {timeout:.0f} s (the time left in the budget); "
                         "backends it had not finished are missing")
    tables = parse_phonebook(stdout)
    worst = 0.0
    for backend, rows in tables.items():
        for label, keys in (("name prefixes", NAME_QUERIES), ("number fragments", NUMBER_QUERIES)):
            picked = {k: v for k, v in rows.items() if k.startswith(keys)}
            if not picked:
                continue
            p50 = max(v[0] for v in picked.values())
            p99 = max(v[1] for v in picked.values())
            worst = max(worst, p99)
            res.add(f"{backend} {label}", f"p50 <= {p50:.1f} ms, p99 <= {p99:.1f} ms (worst of {len(picked)} kinds)")
        res.notes.append(f"{backend}: " + "; ".join(f"{k} {v[0]:.1f}/{v[1]:.1f}" for k, v in rows.items()))
    skipped = [line for line in stdout.splitlines() if "skipped" in line]
    res.notes += skipped
    res.target = f"search p99 < {TARGET_SEARCH_P99_MS:.0f} ms at 100,000 contacts"
    if not tables:
        res.verdict = "not measured: no complete result table in phonebook_search.py's output"
    else:
        res.verdict = "met" if worst < TARGET_SEARCH_P99_MS else f"NOT met (worst p99 {worst:.1f} ms)"
    return [res]


# --- the run -----------------------------------------------------------------------------------------------
def benches(quick: bool, left: Callable[[], float]) -> dict[str, tuple[str, Callable[[], list[Result]]]]:
    import click_to_call
    import edge
    import fanout
    import sip_calls
    import sip_register
    import web_first_load

    return {
        "1": ("registrations", lambda: sip_register.run(quick=quick, log=say)),
        "2": ("calls", lambda: sip_calls.run(quick=quick, log=say)),
        "3": ("click-to-call", lambda: click_to_call.run(log=say, quick=quick)),
        "4": ("fan-out", lambda: fanout.run(log=say)),
        "6": ("web first load", lambda: web_first_load.run(rounds=3 if quick else 5)),
        "7": ("Kamailio edge and two nodes", lambda: edge.run(quick=quick, log=say)),
        "5": ("phonebook", lambda: run_phonebook(100_000, 50 if quick else 100,
                                                  max(PHONEBOOK_MIN_SECONDS, left() - 10))),
    }


def write_results(path: Path, results: list[Result], info: dict[str, str], started: datetime, elapsed: float,
                  load_start: str, load_end: str, quick: bool) -> None:
    lines = [
        "# callto benchmarks",
        "",
        f"Written by `make bench` (`bench/run_all.py`{' --quick' if quick else ''}) on "
        f"{started.strftime('%Y-%m-%d %H:%M UTC')}; the whole run took {elapsed / 60:.1f} min. "
        "How each benchmark works and how to read this table: [bench/README.md](README.md).",
        "",
        f"**Machine:** {info['cpu']}, {info['cores']} cores, {info['ram']} RAM, Linux {info['kernel']}, "
        f"Python {info['python']}; {info['sipp']}; Kamailio {info['kamailio']}.  ",
        f"**Load average** (1/5/15 min) at the start: {load_start}; at the end: {load_end}. "
        "Anything above ~0.5 means other work shared the 2 cores and every number below is pessimistic.",
        "",
        "| Benchmark | Metric | Value |",
        "|---|---|---|",
    ]

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    for r in results:
        name = cell(r.bench)
        for metric, value in r.rows:
            lines.append(f"| {name} | {cell(metric)} | {cell(value)} |")
            name = ""
        if r.reference:
            lines.append(f"| {name} | reference, same run | {cell(r.reference)} |")
            name = ""
        if r.target:
            lines.append(f"| {name} | target: {cell(r.target)} | **{cell(r.verdict or 'n/a')}** |")
        elif r.verdict:
            lines.append(f"| {name} | | **{cell(r.verdict)}** |")
    lines += ["", "## What was measured, and the load offered", ""]
    for r in results:
        lines += [f"### {r.bench}", "", f"- Measured: {r.measured}", f"- Load: {r.load}"]
        for note in r.notes:
            # a ladder's steps come as "name steps: step | step | ...": one line per step reads better
            head, sep, steps = note.partition(" steps: ")
            if sep and " | " in steps:
                lines.append(f"- {head} steps:")
                lines += [f"  - `{step.strip()}`" for step in steps.split(" | ")]
            else:
                lines.append(f"- {note}")
        lines.append("")
    path.write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="coarser rate ladders, fewer rounds")
    # 6 before 5: the phonebook benchmark takes whatever is left of the time budget
    parser.add_argument("--only", default="1,2,3,4,6,7,5", help="comma-separated benchmark numbers, in run order")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/RESULTS.md")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    info = machine()
    started = datetime.now(UTC)
    t0 = time.monotonic()
    load_start = loadavg()
    say(f"callto benchmarks, {started.strftime('%Y-%m-%d %H:%M UTC')}")
    say(f"machine: {machine_line(info)}; {info['sipp']}; Kamailio {info['kamailio']}")
    say(f"load average: {load_start}")
    results: list[Result] = []
    table = benches(args.quick, lambda: BUDGET_SECONDS - (time.monotonic() - t0))
    for key in [k.strip() for k in args.only.split(",") if k.strip()]:
        if key not in table:
            say(f"unknown benchmark {key!r}; known: {', '.join(table)}")
            return 2
        name, fn = table[key]
        say(f"\n-- {key}. {name} (t = {time.monotonic() - t0:.0f} s)")
        try:
            got = fn()
        except Exception as exc:  # one broken benchmark must not lose the others' numbers
            got = [Result(f"{key}. {name}", name, "n/a", verdict=f"not measured: {type(exc).__name__}: {exc}")]
        for r in got:
            say(r.render())
        results += got
    elapsed = time.monotonic() - t0
    load_end = loadavg()
    say(f"\nmachine: {machine_line(info)}; load average at the end: {load_end}; total {elapsed:.0f} s"
        + ("" if elapsed <= BUDGET_SECONDS else f" (over the {BUDGET_SECONDS} s budget)"))
    if not args.no_write:
        out = BENCH / "RESULTS.md"
        write_results(out, results, info, started, elapsed, load_start, load_end, args.quick)
        say(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
