"""Shared pieces of the benchmarks: the machine, a real ``callto serve`` subprocess, Kamailio, sipp, CPU/RSS.

Owns everything the benchmark scripts have in common and nothing benchmark-specific: free loopback ports,
starting and always killing processes (each in its own session, killed by process group), bulk-seeding the
directory (users, devices, the JWT key) straight into the database before the server starts, CPU seconds
and RSS of a process tree read from ``/proc``, and the :class:`Result` record that ``run_all.py`` prints
and turns into ``bench/RESULTS.md``.
"""

from __future__ import annotations

import contextlib
import csv
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
SCENARIOS = BENCH / "scenarios"
KAMAILIO_DIR = BENCH / "kamailio"
for _extra in (ROOT / "src", ROOT / "tests"):
    if str(_extra) not in sys.path:
        sys.path.insert(0, str(_extra))

import httpx  # noqa: E402

LOOPBACK = "127.0.0.1"
SIP_DOMAIN = "callto.test"
ADMIN_PASSWORD = "bench-admin-secret-1"
DEVICE_PASSWORD = "bench-sip-secret-1"  # every seeded device: one sipp injection file serves callto and Kamailio
USER_PASSWORD = "bench-user-secret-1"
KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The uvloop launcher: same entry point as ``callto serve``, with uvloop's policy installed first.
UVLOOP_LAUNCHER = (
    "import asyncio, sys, uvloop; asyncio.set_event_loop_policy(uvloop.EventLoopPolicy()); "
    "from callto.cli import main; sys.exit(main(['serve']))"
)


# --- the machine ------------------------------------------------------------------------------------
def machine() -> dict[str, str]:
    """CPU model, cores, RAM, kernel, Python: printed with every result and written to RESULTS.md."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_kb = int(line.split()[1])
    return {
        "cpu": model,
        "cores": str(os.cpu_count() or 0),
        "ram": f"{ram_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sipp": _version(["sipp", "-v"], "SIPp"),
        "kamailio": _version([KAMAILIO, "-v"], "version:"),
    }


def _version(argv: list[str], marker: str) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    for line in (out.stdout + out.stderr).splitlines():
        if marker in line:
            return line.strip().replace("version: ", "")
    return "unknown"


def machine_line(info: dict[str, str] | None = None) -> str:
    m = info or machine()
    return f"{m['cpu']}, {m['cores']} cores, {m['ram']} RAM, Linux {m['kernel']}, Python {m['python']}"


# --- results ----------------------------------------------------------------------------------------
@dataclass
class Result:
    """One benchmark's outcome: what it measured, under which load, against which reference."""

    bench: str
    measured: str
    load: str
    rows: list[tuple[str, str]] = field(default_factory=list)  # (metric, value) for the RESULTS table
    reference: str = ""
    target: str = ""
    verdict: str = ""  # "met", "NOT met: ...", or "not measured: <reason>"
    notes: list[str] = field(default_factory=list)

    def add(self, metric: str, value: str) -> None:
        self.rows.append((metric, value))

    def render(self) -> str:
        lines = [f"== {self.bench}", f"   measured: {self.measured}", f"   load:     {self.load}"]
        lines += [f"   {metric}: {value}" for metric, value in self.rows]
        if self.reference:
            lines.append(f"   reference (same run): {self.reference}")
        if self.target:
            lines.append(f"   target: {self.target} -> {self.verdict or 'n/a'}")
        elif self.verdict:
            lines.append(f"   {self.verdict}")
        lines += [f"   note: {n}" for n in self.notes]
        return "\n".join(lines)


def not_measured(bench: str, measured: str, reason: str) -> Result:
    return Result(bench, measured, "none", verdict=f"not measured: {reason}")


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


# --- ports and processes ----------------------------------------------------------------------------
def free_port(kind: str = "tcp") -> int:
    """A loopback port free now for ``tcp``, ``udp`` or ``both`` (SIP listeners take UDP and TCP)."""
    for _ in range(200):
        sock_kind = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, sock_kind) as s:
            s.bind((LOOPBACK, 0))
            port = int(s.getsockname()[1])
        if kind != "both":
            return port
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind((LOOPBACK, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free loopback port")


class Proc:
    """A subprocess in its own session with its output in a file; :meth:`stop` kills its whole group."""

    def __init__(self, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self, tail: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-tail:])

    def stop(self, grace: float = 5.0) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(grace)
        # whatever is left in the group (kamailio's children, a stuck leader) goes now
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        self._log.close()


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name is in parentheses and may hold spaces: split after the last ')'
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """``root`` and every descendant (kamailio forks its workers; callto serve may start helpers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def cpu_seconds(root: int) -> float:
    """User + system CPU seconds of ``root``'s process tree, all threads included (``/proc/<pid>/stat``)."""
    total = 0
    for pid in process_tree(root):
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLK_TCK


def rss_bytes(root: int) -> int:
    """Resident memory of ``root``'s process tree: the proportional set size (Pss) summed, so memory
    shared between processes (Kamailio's shared memory segment, mapped by every worker) counts once;
    VmRSS where smaps_rollup is not readable."""
    total = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError, ValueError):
            total += _kib(Path(f"/proc/{pid}/smaps_rollup"), "Pss:") or _kib(Path(f"/proc/{pid}/status"), "VmRSS:")
    return total


def _kib(path: Path, key: str) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    return 0


def udp_drops() -> int:
    """Datagrams the kernel dropped because a socket's receive buffer was full (whole machine)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
        return int(lines[1][lines[0].index("RcvbufErrors")])
    return 0


# --- the directory, seeded in bulk ------------------------------------------------------------------
@dataclass(frozen=True)
class SeededUser:
    user_id: int
    username: str
    extension: str
    device_id: int
    sip_username: str


@dataclass
class Seed:
    jwt_key: str
    users: list[SeededUser]


def seed_directory(database_url: str, count: int, *, kind: str = "deskphone", prefix: str = "b") -> Seed:
    """``count`` users, each with one device of ``kind``, plus the admin, straight into a fresh database.

    The API would need an argon2 hash per user (tens of ms each); here every user shares one hash, and
    the JWT key is chosen by us so the benchmark can issue event-stream tokens without 1,000 logins.
    """
    from sqlalchemy import insert

    from callto.directory import security
    from callto.directory.models import Device, Setting, User
    from callto.store import migrate
    from callto.store.database import Database

    db = Database(database_url)
    migrate.upgrade(db)
    jwt_key = secrets.token_urlsafe(48)
    user_hash = security.hash_password(USER_PASSWORD)
    admin_hash = security.hash_password(ADMIN_PASSWORD)
    users = [
        {"id": 1, "username": "admin", "display_name": "Administrator", "role": "admin", "outbound": "international",
         "password_hash": admin_hash, "dnd": False, "totp_enabled": False, "token_version": 0}
    ]
    devices = []
    seeded = []
    for i in range(count):
        user_id, device_id = i + 2, i + 1
        username, ext, sip = f"{prefix}user{i:05d}", str(20000 + i), f"{prefix}{i:05d}"
        users.append({"id": user_id, "username": username, "display_name": f"Bench User {i}", "extension": ext,
                      "role": "user", "outbound": "national", "password_hash": user_hash, "dnd": False,
                      "totp_enabled": False, "token_version": 0, "main_device_id": device_id})
        devices.append({"id": device_id, "user_id": user_id, "kind": kind, "label": "Bench",
                        "sip_username": sip, "sip_password": DEVICE_PASSWORD})
        seeded.append(SeededUser(user_id, username, ext, device_id, sip))
    with db.session() as s:
        s.execute(insert(User), users)
        if devices:
            s.execute(insert(Device), devices)
        s.add(Setting(key="jwt_key", value=jwt_key))
    db.dispose()
    return Seed(jwt_key, seeded)


def user_token(seed: Seed, user_id: int) -> str:
    from callto.directory.security import TokenSigner

    token, _ = TokenSigner(seed.jwt_key, 12 * 3600).issue(user_id, 0)
    return token


# --- the server -------------------------------------------------------------------------------------
@dataclass
class BenchServer:
    """A real ``callto serve`` (or the uvloop launcher of it) on free loopback ports."""

    workdir: Path
    # None: the server's own choice (asyncio's loop unless CALLTO_EVENT_LOOP says otherwise); True: uvloop
    # through the launcher; False: asyncio's loop, said explicitly (CALLTO_EVENT_LOOP=asyncio).
    uvloop: bool | None = None
    env_extra: dict[str, str] = field(default_factory=dict)
    http_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    sip_port: int = field(default_factory=lambda: free_port("both"))
    proc: Proc | None = None

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'callto.db'}"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{LOOPBACK}:{self.http_port}"

    @property
    def sip_target(self) -> str:
        return f"{LOOPBACK}:{self.sip_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLTO_")}
        env.update(
            CALLTO_DATA_DIR=str(self.data_dir),
            CALLTO_DATABASE_URL=self.database_url,
            CALLTO_BIND=LOOPBACK,
            CALLTO_HTTP_PORT=str(self.http_port),
            CALLTO_HTTPS_PORT=str(self.https_port),
            CALLTO_SIP_PORT=str(self.sip_port),
            CALLTO_SIP_TLS_PORT=str(free_port()),
            CALLTO_ADMIN_PASSWORD=ADMIN_PASSWORD,
            CALLTO_SIP_DOMAIN=SIP_DOMAIN,
            # warnings only: a per-request access log line would be part of what we measure otherwise
            CALLTO_LOG_LEVEL="warning",
            CALLTO_MEDIA_RTPENGINE="off",
            PYTHONPATH=str(ROOT / "src"),
        )
        if self.uvloop is False:
            env["CALLTO_EVENT_LOOP"] = "asyncio"
        env.update(self.env_extra)
        return env

    def seed(self, count: int, *, kind: str = "deskphone") -> Seed:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return seed_directory(self.database_url, count, kind=kind)

    def start(self, timeout: float = 60.0) -> BenchServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-c", UVLOOP_LAUNCHER] if self.uvloop else [sys.executable, "-m", "callto", "serve"]
        self.proc = Proc(argv, self.workdir / "server.log", env=self.env(), cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise RuntimeError(f"callto serve exited:\n{self.proc.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"callto serve not healthy within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(10)
            self.proc = None

    def admin_token(self) -> str:
        r = httpx.post(f"{self.url}/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD},
                       timeout=15)
        r.raise_for_status()
        return str(r.json()["token"])


@contextlib.contextmanager
def workdir(name: str) -> Iterator[Path]:
    """A scratch directory for one benchmark (logs, databases, sipp files), removed at the end
    unless CALLTO_BENCH_KEEP is set (then its path is printed for a post-mortem)."""
    path = Path(tempfile.mkdtemp(prefix=f"callto-bench-{name}-"))
    try:
        yield path
    finally:
        if os.environ.get("CALLTO_BENCH_KEEP"):
            print(f"   (kept {path})", flush=True)
        else:
            shutil.rmtree(path, ignore_errors=True)


# --- Kamailio ---------------------------------------------------------------------------------------
def start_kamailio(template: str, work: Path, **subst: str) -> tuple[Proc, int]:
    """Kamailio in the foreground (``-DD -E``) from ``bench/kamailio/<template>`` with ``@KEY@`` filled in."""
    port = free_port("udp")
    text = (KAMAILIO_DIR / template).read_text()
    for key, value in {"PORT": str(port), **subst}.items():
        text = text.replace(f"@{key}@", value)
    cfg = work / template
    cfg.write_text(text)
    proc = Proc([KAMAILIO, "-DD", "-E", "-f", str(cfg), "-m", "256", "-M", "16"], work / f"{template}.log")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"kamailio exited:\n{proc.log()}")
        if _udp_bound(port) and len(process_tree(proc.pid)) > 2:
            time.sleep(0.3)  # workers finish their child_init
            return proc, port
        time.sleep(0.1)
    proc.stop()
    raise RuntimeError(f"kamailio did not listen on {port}:\n{proc.log()}")


def _udp_bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


# --- sipp -------------------------------------------------------------------------------------------
@dataclass
class SippStep:
    """One sipp run's final counters (the last line of its ``-trace_stat`` file)."""

    returncode: int
    successful: int
    failed: int
    retransmissions: int
    elapsed: float  # seconds from sipp's start to its last statistics line
    wall: float
    errors: str = ""
    mean_call: float = 0.0  # seconds, sipp's average call length

    @property
    def rate(self) -> float:
        """Successful calls per second over the time calls were being started: the run time less one
        average call, so that a fixed per-call latency does not count as a lower rate."""
        window = self.elapsed - self.mean_call
        return self.successful / window if window > 0 else 0.0


def _sipp_elapsed(row: dict[str, str]) -> float | None:
    # StartTime / CurrentTime are "date<TAB>time<TAB>epoch.micro"; ElapsedTime has whole seconds only
    try:
        start = float(row["StartTime"].split("\t")[-1])
        now = float(row["CurrentTime"].split("\t")[-1])
    except (KeyError, ValueError, IndexError):
        return None
    return now - start


def _sipp_duration(text: str) -> float:
    # "HH:MM:SS:micro" (CallLength)
    try:
        h, m, sec, micro = text.split(":")
        return int(h) * 3600 + int(m) * 60 + int(sec) + int(micro) / 1e6
    except ValueError:
        return 0.0


def sipp_stats(stats_csv: Path) -> dict[str, str]:
    if not stats_csv.exists():
        return {}
    with stats_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    return rows[-1] if rows else {}


def sipp_buffers() -> list[str]:
    """sipp's socket buffers as large as the kernel allows (up to 4 MiB): its 64 KiB default overflows
    when sipp is briefly descheduled at a few thousand messages per second, and the load generator's own
    drops would then count against the server as retransmissions."""
    size = 4 << 20
    with contextlib.suppress(OSError, ValueError):
        size = min(size, int(Path("/proc/sys/net/core/rmem_max").read_text()))
    return ["-buff_size", str(size)]


def run_sipp(argv: Sequence[str], work: Path, name: str, timeout: float) -> SippStep:
    """Run sipp (``argv`` without the stats options) to completion; kill it after ``timeout`` seconds."""
    stats = work / f"{name}-stats.csv"
    errors = work / f"{name}-errors.log"
    stats.unlink(missing_ok=True)
    errors.unlink(missing_ok=True)
    full = ["sipp", *argv, *sipp_buffers(), "-nostdin", "-trace_stat", "-stf", str(stats), "-fd", "1",
            "-trace_err", "-error_file", str(errors)]
    start = time.monotonic()
    popen = subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                             cwd=work, start_new_session=True)
    try:
        _, stderr = popen.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        _, stderr = popen.communicate()
    wall = time.monotonic() - start
    row = sipp_stats(stats)

    def counter(key: str) -> int:
        return int(row.get(f"{key}(C)", "0") or 0)

    err_text = errors.read_text(errors="replace")[-1500:] if errors.exists() else ""
    return SippStep(
        returncode=popen.returncode,
        successful=counter("SuccessfulCall"),
        failed=counter("FailedCall"),
        retransmissions=counter("Retransmissions"),
        elapsed=_sipp_elapsed(row) or wall,
        wall=wall,
        errors=(stderr.decode(errors="replace")[-500:] + err_text).strip(),
        mean_call=_sipp_duration(row.get("CallLength(C)", "")),
    )


def describe(info: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in info.items())
