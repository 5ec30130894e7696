"""Instructions per click-to-call, counted by valgrind's callgrind: a figure machine load does not move.

Owns the before/after figure for the click path's CPU. Runs ``click_cpu.py`` (the real app as ASGI, the
real switch, phones simulated; see there) twice under ``valgrind --tool=callgrind`` with the same users
and ``--rounds`` A and B, and prints ``(Ir(B) - Ir(A)) / ((B - A) * n)``: the instructions of one click,
all in (HTTP request, INVITE, 180, 486, call record), start-up and warm-up cancelled out. Hash seeds are
fixed (``PYTHONHASHSEED=0``) so two runs of the same code agree to well under 1%. With ``--top`` it also
prints the C functions with the most instructions per click (the interpreter itself first; for the
Python functions behind them use ``click_cpu.py --profile``).

Usage: ``.venv/bin/python bench/click_instructions.py [--n 50] [--rounds 2,6] [--top 25] [--keep DIR]``
(the two runs side by side; a minute or two on idle cores).
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


def counted(n: int, rounds: tuple[int, ...], outs: tuple[Path, ...]) -> list[int]:
    """Instructions of runs of click_cpu.py with ``rounds[i]`` rounds of ``n`` clicks (run side by side:
    an instruction count does not depend on what else the machine does)."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    procs = [
        subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                          str(BENCH / "click_cpu.py"), "--n", str(n), "--rounds", str(r)],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for r, out in zip(rounds, outs, strict=True)
    ]
    counts = []
    for proc in procs:
        _, err = proc.communicate(timeout=3600)
        found = _COLLECTED.search(err)
        if proc.returncode != 0 or found is None:
            raise RuntimeError(f"click_cpu.py under callgrind failed ({proc.returncode}): {err[-800:]}")
        counts.append(int(found.group(1)))
    return counts


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
    parser.add_argument("--rounds", default="2,6", help="the two round counts, A,B (B > A)")
    parser.add_argument("--top", type=int, default=0, help="also print this many C functions per click")
    parser.add_argument("--keep", help="keep the callgrind files in this directory")
    args = parser.parse_args()
    low, high = (int(r) for r in args.rounds.split(","))
    if high <= low:
        parser.error("--rounds A,B needs B > A")
    if shutil.which("valgrind") is None:
        print("not measured: valgrind is not installed")
        return 1
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="callto-clickir-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        outs = (work / f"callgrind.r{low}.out", work / f"callgrind.r{high}.out")
        ir_low, ir_high = counted(args.n, (low, high), outs)
        clicks = (high - low) * args.n
        print(f"instructions per click (N={args.n}, rounds {low} and {high}): {(ir_high - ir_low) / clicks:,.0f} Ir")
        if args.top:
            a, b = functions(outs[0]), functions(outs[1])
            diff = sorted(((b.get(k, 0) - a.get(k, 0), k) for k in set(a) | set(b)), reverse=True)
            print("C functions, self instructions per click:")
            for ir, name in diff[: args.top]:
                print(f"  {ir / clicks:10,.0f}  {name}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
