"""Where the server's time goes under SIP load: py-spy samples ``callto serve`` while sipp drives it.

Owns the "profile before optimizing" step of issue 9 (not part of ``make bench``). Starts a seeded server,
offers a fixed load (``register``: digest REGISTERs of 10,000 devices; ``calls``: the calls benchmark's
UAC/UAS scenario) for ``--seconds``, samples the server with py-spy (``pip install py-spy``) and prints
the functions with the most inclusive and self time, from callto's own code first.

Usage: ``.venv/bin/python bench/profile_server.py register|calls [--rate 100] [--seconds 10]
[--loop auto|asyncio|uvloop]``
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sip_calls
import sip_register
from common import BenchServer, Proc, cpu_seconds, free_port, workdir


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


def summarize(raw: Path, top: int) -> str:
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] += n
        self_time[frames[-1]] += n
    if not total:
        return "no samples"
    out = [f"{total} samples", "", "inclusive (callto code):"]
    ours = [(f, n) for f, n in inclusive.most_common() if "callto/" in f]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in ours[:top]]
    out += ["", "self time (any code):"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in self_time.most_common(top)]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("load", choices=("register", "calls"))
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                        help="auto: the server's own choice (uvloop when installed)")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    spy_bin = py_spy()
    with workdir("profile") as work:
        server = BenchServer(work, uvloop={"auto": None, "asyncio": False, "uvloop": True}[args.loop])
        uas: Proc | None = None
        try:
            if args.load == "register":
                server.seed(sip_register.DEVICES)
            else:
                server.seed(sip_calls.CALLERS + 1)
            server.start()
            raw = work / "profile.txt"
            spy = subprocess.Popen([spy_bin, "record", "-p", str(server.pid), "-d", str(int(args.seconds)), "-r", "250",
                                    "-f", "raw", "-o", str(raw), "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cpu = lambda: cpu_seconds(server.pid)  # noqa: E731
            if args.load == "register":
                s = sip_register.step(server.sip_target, free_port("udp"), args.rate, args.seconds, work,
                                      sip_register.DEVICES, 0, cpu, "profile")
                print(s.line())
            else:
                uas_port = free_port("udp")
                sip_calls.register(server.sip_target, uas_port, [sip_calls.CALLEE], work, "reg-callee")
                uas = sip_calls.start_uas(work, uas_port, "uas")
                c = sip_calls.call_step(server.sip_target, work, free_port("udp"), args.rate, args.seconds, cpu,
                                        "profile")
                print(c.line())
            spy.wait(args.seconds + 30)
            print(summarize(raw, args.top))
        finally:
            if uas is not None:
                uas.stop()
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
