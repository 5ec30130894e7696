"""Instructions per click-to-call, counted by valgrind's callgrind: a figure machine load does not move.

Owns the before/after figure for the click path's CPU. Runs ``click_cpu.py --callgrind`` (the real app as
ASGI, the real switch, phones simulated; see there) under ``valgrind --tool=callgrind --instr-atstart=no``:
start-up, seeding and warm-up run uninstrumented, the timed rounds are counted (``callgrind_control``
turns the instrumentation on and off around them), and it prints the instructions of one click, all in
(HTTP request, INVITE, 180, 486, call record). Hash seeds are fixed (``PYTHONHASHSEED=0``). With ``--top``
it also prints the C functions with the most instructions per click (the interpreter itself first; for
the Python functions behind them use ``click_cpu.py --profile``).

Usage: ``.venv/bin/python bench/click_instructions.py [--n 50] [--rounds 4] [--top 25] [--keep DIR]``
(under a minute on an idle core).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
_COLLECTED = re.compile(r"Collected : (\d+)")
_ROW = re.compile(r"^\s*([\d,]+) \([ \d.]+%\)\s+(.*)$")


def counted(n: int, rounds: int, out: Path) -> int:
    """Instructions of the timed rounds of one run of click_cpu.py (``rounds`` rounds of ``n`` clicks)."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", sys.executable,
           str(BENCH / "click_cpu.py"), "--n", str(n), "--rounds", str(rounds), "--callgrind"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"click_cpu.py under callgrind failed ({done.returncode}): {done.stderr[-800:]}")
    return int(found.group(1))


def functions(out: Path) -> dict[str, int]:
    """Self instructions by C function, from ``callgrind_annotate``."""
    text = subprocess.run(["callgrind_annotate", "--threshold=100", str(out)], capture_output=True, text=True,
                          check=False).stdout
    table: dict[str, int] = {}
    for line in text.splitlines():
        row = _ROW.match(line)
        if row and "PROGRAM TOTALS" not in row.group(2):
            name = re.sub(r" \[.*\]$", "", row.group(2))
            name = re.sub(r"^.*/(Python-[\d.]+|site-packages)/", "", name)
            table[name] = table.get(name, 0) + int(row.group(1).replace(",", ""))
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="users clicking at once")
    parser.add_argument("--rounds", type=int, default=4, help="timed rounds (counted)")
    parser.add_argument("--top", type=int, default=0, help="also print this many C functions per click")
    parser.add_argument("--keep", help="keep the callgrind file in this directory")
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("not measured: valgrind (callgrind_control) is not installed")
        return 1
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="callto-clickir-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        out = work / "callgrind.out"
        clicks = args.rounds * args.n
        ir = counted(args.n, args.rounds, out)
        print(f"instructions per click (N={args.n}, {args.rounds} rounds): {ir / clicks:,.0f} Ir")
        if args.top:
            print("C functions, self instructions per click:")
            for name, ir in sorted(functions(out).items(), key=lambda kv: -kv[1])[: args.top]:
                print(f"  {ir / clicks:10,.0f}  {name}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
