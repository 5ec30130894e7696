"""The Debian package of the server, end to end in a Debian 12 (bookworm) chroot made with debootstrap.

Builds ``callto_<N>`` and ``callto_<N+1>`` with ``scripts/build-deb.sh`` (N+1 is the same tree plus one
test-only migration), installs N into a ``debootstrap --variant=minbase`` system (without network:
the package is self-contained), checks files, owners and modes, verifies the unit with
``systemd-analyze verify``, runs the unit's ``ExecStartPre`` and ``ExecStart`` in the chroot as the
unit would (its user, environment, umask, NoNewPrivileges, and a read-only system but for its
ReadWritePaths and a private /tmp; free loopback ports, rtpengine off) until ``/api/v1/health``
answers, upgrades to N+1 (data kept, the new migration applied exactly once and before the new
version serves), removes (data kept) and purges (user, data and config gone).

The bookworm system (with the package's dependencies installed from the machine's configured Debian
mirror) is cached as a tarball in ``/var/cache/callto-test/`` (``CALLTO_TEST_CACHE`` to change), so
only the first run needs the mirror. Needs root (chroot, mount); skipped with a reason otherwise.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from support.ports import free_port
from support.procs import ManagedProcess, ProcessGroup, process_group

ROOT = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
CACHE_DIR = Path(os.environ.get("CALLTO_TEST_CACHE", "/var/cache/callto-test"))
# What the test itself needs in the chroot on top of the package's dependencies: systemd for
# ``systemd-analyze verify`` (it is not started: a chroot has no init).
CHROOT_EXTRA = ("systemd",)
PROBE_REVISION = "pkgprobe0001"
PROBE_MIGRATION = f'''"""Test-only revision added by tests/packaging for the N+1 package: counts its own runs."""

import sqlalchemy as sa
from alembic import op

revision = "{PROBE_REVISION}"
down_revision = None
branch_labels = ("packaging_probe",)
depends_on = None


def upgrade() -> None:
    op.create_table("packaging_probe", sa.Column("id", sa.Integer(), primary_key=True))
    op.execute("INSERT INTO packaging_probe (id) VALUES (1)")


def downgrade() -> None:
    op.drop_table("packaging_probe")
'''

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(600)]

if os.geteuid() != 0:
    pytest.skip("the Debian package test needs root (debootstrap, chroot, mount)", allow_module_level=True)


@pytest.fixture(scope="module", autouse=True)
def tools() -> None:
    missing = [t for t in ("debootstrap", "dpkg-deb", "zstd", "unshare", "chroot") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: `make test` installs them (DEB_TEST in the Makefile)")


def run(argv: list[str], *, timeout: float = 120, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    if check and result.returncode != 0:
        raise AssertionError(
            f"{shlex.join(argv)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result  # type: ignore[no-any-return]


# --- the machine's Debian mirror -------------------------------------------------------------------


def configured_mirrors() -> dict[str, str]:
    """``{"main": uri, "security": uri}`` from the host's /etc/apt/sources.list* (one-line and deb822)."""
    entries: list[tuple[str, str]] = []  # (uri, suite)
    apt = Path("/etc/apt")
    files = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]
    for path in files:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                entries.append((words[1], words[2]))
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[0].isspace():
                    continue
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
                continue
            uris, suites = fields.get("uris", "").split(), fields.get("suites", "").split()
            entries += [(uri, suite) for uri in uris for suite in suites]
    mirrors: dict[str, str] = {}
    for uri, suite in entries:
        if "/debian" not in uri:
            continue
        if suite.endswith("-security") or "/debian-security" in uri:
            mirrors.setdefault("security", uri)
        elif "-" not in suite:
            mirrors.setdefault("main", uri)
    if "main" not in mirrors:
        raise AssertionError("no Debian mirror found in /etc/apt/sources.list* (needed once, to debootstrap)")
    return mirrors


def package_depends() -> list[str]:
    control = (ROOT / "packaging/deb/control.in").read_text()
    match = re.search(r"^Depends:(.*)$", control, re.M)
    assert match, "packaging/deb/control.in has no Depends"
    return [d.strip().split()[0] for d in match.group(1).split(",")]


# --- the cached bookworm system --------------------------------------------------------------------


@contextlib.contextmanager
def proc_mounted(root: Path) -> Iterator[None]:
    """/proc in the chroot for the steps that need it; always unmounted, even when a step fails."""
    target = root / "proc"
    run(["mount", "-t", "proc", "proc", str(target)])
    try:
        yield
    finally:
        run(["umount", "-l", str(target)], check=False)


def is_mounted_below(root: Path) -> bool:
    prefix = str(root.resolve()) + "/"
    return any(line.split()[1].startswith(prefix) for line in Path("/proc/mounts").read_text().splitlines())


def chroot_tarball() -> Path:
    mirrors = configured_mirrors()
    packages = sorted({*package_depends(), *CHROOT_EXTRA})
    key = hashlib.sha256(json.dumps([SUITE, mirrors, packages]).encode()).hexdigest()[:12]
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tarball = CACHE_DIR / f"{SUITE}-minbase-{key}.tar.zst"
    with (CACHE_DIR / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second run waits for the first one's build
        if tarball.is_file():
            return tarball
        print(f"\nbuilding the cached {SUITE} chroot {tarball} (once; debootstrap from {mirrors['main']})", flush=True)
        started = time.monotonic()
        build = Path(str(tarball) + ".build")
        shutil.rmtree(build, ignore_errors=True)
        try:
            run(["debootstrap", "--variant=minbase", SUITE, str(build), mirrors["main"]], timeout=900)
            sources = [f"deb {mirrors['main']} {SUITE} main", f"deb {mirrors['main']} {SUITE}-updates main"]
            if "security" in mirrors:
                sources.append(f"deb {mirrors['security']} {SUITE}-security main")
            (build / "etc/apt/sources.list").write_text("\n".join(sources) + "\n")
            # Nothing installed in the chroot may start a daemon.
            policy = build / "usr/sbin/policy-rc.d"
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
            env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
            with proc_mounted(build):
                run(["chroot", str(build), "apt-get", "update", "-q"], timeout=600, env=env)
                run(["chroot", str(build), "apt-get", "install", "-y", "-q", "--no-install-recommends",
                     "-o", "Dpkg::Options::=--force-unsafe-io", *packages],
                    timeout=900, env=env)
                run(["chroot", str(build), "apt-get", "clean"], env=env)
            assert not is_mounted_below(build), f"something is still mounted below {build}"
            partial = Path(str(tarball) + ".part")
            run(["tar", "-C", str(build), "--numeric-owner", "-I", "zstd -T0 -3", "-cpf", str(partial), "."],
                timeout=600)
            partial.rename(tarball)
            for stale in CACHE_DIR.glob(f"{SUITE}-minbase-*.tar.zst"):
                if stale != tarball:  # made for other dependencies or another mirror
                    stale.unlink()
        finally:
            if not is_mounted_below(build):
                shutil.rmtree(build, ignore_errors=True)
        print(f"chroot cache built in {time.monotonic() - started:.0f}s", flush=True)
        return tarball


@pytest.fixture(scope="module")
def chroot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tarball = chroot_tarball()
    root = tmp_path_factory.mktemp("bookworm") / "root"
    root.mkdir()
    run(["tar", "-C", str(root), "--numeric-owner", "-I", "zstd", "-xpf", str(tarball)], timeout=300)
    try:
        with proc_mounted(root):
            yield root
    finally:
        # Never delete through a mount point: what is below it is not ours.
        if not is_mounted_below(root):
            shutil.rmtree(root, ignore_errors=True)


# --- the two packages ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Version N from this checkout, N+1 from a copy of it with one more (test-only) migration."""
    if not (ROOT / "web/dist/index.html").is_file():
        pytest.fail("web/dist is not built (make test builds it: bash web/build.sh)")
    work = tmp_path_factory.mktemp("deb")
    upstream = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert upstream
    old, new = f"{upstream.group(1)}-1", f"{upstream.group(1)}-2"
    tree = work / "next"
    tree.mkdir()
    shutil.copy(ROOT / "pyproject.toml", tree)
    shutil.copy(ROOT / "README.md", tree)
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (tree / "src/callto/history/migrations/zz_packaging_probe.py").write_text(PROBE_MIGRATION)
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    # Both at once: most of a build waits on pip and the disk, not on the CPU.
    started = time.monotonic()
    with process_group(work / "logs") as group:
        builds = {
            version: group.start(
                # zstd: the same package `make deb` makes (xz), packed in seconds instead of minutes.
                ["bash", ROOT / "scripts/build-deb.sh", "--version", version, "--source", source,
                 "--web-dist", ROOT / "web/dist", "--out", work / "out", "--compress", "zstd"],
                name=f"build-deb-{version}",
            )
            for version, source in ((old, ROOT), (new, tree))
        }
        for version, build in builds.items():
            build.wait_until(lambda b=build: not b.alive(), 400, f"the {version} package")  # type: ignore[misc]
            assert build.popen.returncode == 0, build.tail()
            print(build.output().strip().splitlines()[-1], flush=True)
    print(f"both packages built in {time.monotonic() - started:.0f}s", flush=True)
    built = {version: work / "out" / f"callto_{version}_{arch}.deb" for version in builds}
    assert all(deb.is_file() for deb in built.values()), built
    return built


# --- running things in the chroot ------------------------------------------------------------------

CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8"}


def in_chroot(root: Path, *argv: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(["chroot", str(root), *argv], timeout=timeout, check=check, env=CHROOT_ENV)


def dpkg_offline(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """dpkg in the chroot inside a network namespace with no interface up: installing needs no network."""
    # --force-unsafe-io: no fsync per file; the chroot is thrown away after the test.
    return run(["unshare", "--net", "chroot", str(root), "dpkg", "--force-unsafe-io", *argv], timeout=300,
               env=CHROOT_ENV)


def unit_settings(root: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (root / "lib/systemd/system/callto.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def as_the_unit(root: Path, command: str) -> list[str]:
    """argv running one of the unit's Exec lines in the chroot as systemd would, as far as a chroot can:
    its User, Group, Environment and UMask; NoNewPrivileges (setpriv); ProtectSystem=strict with
    ReadWritePaths (the whole system read-only but those paths) and PrivateTmp, in a private mount
    namespace that disappears with the process."""
    unit = unit_settings(root)
    assert unit["ProtectSystem"] == ["strict"] and unit["PrivateTmp"] == ["yes"]
    assert unit["NoNewPrivileges"] == ["yes"]
    env = dict(item.split("=", 1) for item in unit["Environment"])
    env.update(PATH="/usr/sbin:/usr/bin:/sbin:/bin", HOME="/var/lib/callto", LANG="C.UTF-8")
    user, group, umask = unit["User"][0], unit["Group"][0], unit["UMask"][0]
    r = shlex.quote(str(root))
    writable = "".join(f"mount --bind {r}{p} {r}{p}\n" for p in unit["ReadWritePaths"][0].split())
    inner = shlex.join(["/usr/bin/setpriv", "--no-new-privs", "/usr/bin/env", "-i",
                        *(f"{k}={v}" for k, v in env.items()), "/bin/sh", "-c", f'umask {umask} && exec "$@"',
                        "sh", *shlex.split(command)])
    script = (
        "set -e\n"
        f"mount --rbind {r} {r}\n"  # the chroot's root becomes a mount point of its own (with /proc)
        f"mount -t tmpfs -o mode=1777 tmpfs {r}/tmp\n"
        f"{writable}"
        f"mount -o remount,bind,ro {r}\n"
        f"exec chroot --userspec={user}:{group} {r} {inner}\n"
    )
    return ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script]


def write_test_settings(root: Path) -> dict[str, int]:
    """The admin's part: edit the conffile for free loopback ports and no rtpengine (kept on upgrade)."""
    ports = {name: free_port("both" if name == "sip_port" else "tcp")
             for name in ("http_port", "https_port", "sip_port", "sip_tls_port")}
    config = root / "etc/callto/callto.toml"
    shipped = config.read_text().split("\n# --- test settings ---\n")[0]
    lines = [f"{name} = {port}" for name, port in ports.items()]
    lines += ['bind = "127.0.0.1"', 'admin_password = "package-admin-1"', "", "[media]", 'rtpengine = "off"']
    config.write_text(shipped + "\n# --- test settings ---\n" + "\n".join(lines) + "\n")
    return ports


def serve_until_healthy(
    root: Path, procs: ProcessGroup, after_pre: Callable[[], None] | None = None
) -> tuple[ManagedProcess, httpx.Response, str]:
    """ExecStartPre, then ``after_pre()`` (checks between the two), then ExecStart until healthy."""
    ports = write_test_settings(root)
    unit = unit_settings(root)
    pre = run(as_the_unit(root, unit["ExecStartPre"][0]), timeout=120)
    if after_pre is not None:
        after_pre()
    server = procs.start(as_the_unit(root, unit["ExecStart"][0]), name="callto-serve")
    server.wait_for_output(r"callto is running at", timeout=90)
    base = f"http://127.0.0.1:{ports['http_port']}"
    deadline = time.monotonic() + 30
    while True:
        try:
            health = httpx.get(f"{base}/api/v1/health", timeout=5)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or not server.alive():
                raise AssertionError(f"/api/v1/health never answered:\n{server.tail()}") from None
            time.sleep(0.2)
    page = httpx.get(f"{base}/", timeout=5).text
    assert "The web app has not been built" not in page and "<script" in page, "the built web app is not served"
    return server, health, pre.stdout


def stat_of(root: Path, path: str) -> tuple[str, str, str]:
    """(mode, owner, group) as the chroot names them."""
    out = in_chroot(root, "stat", "-c", "%a %U %G", path).stdout.split()
    return out[0], out[1], out[2]


def db_rows(root: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{root}/var/lib/callto/callto.db?mode=ro", uri=True)) as conn:
        return conn.execute(sql).fetchall()


def probe_runs(root: Path) -> int | None:
    tables = {r[0] for r in db_rows(root, "SELECT name FROM sqlite_master WHERE type='table'")}
    if "packaging_probe" not in tables:
        return None
    return int(db_rows(root, "SELECT count(*) FROM packaging_probe")[0][0])  # type: ignore[call-overload]


# --- the test --------------------------------------------------------------------------------------


def test_deb_installs_serves_upgrades_in_place_removes_and_purges_in_bookworm(
    chroot: Path, packages: dict[str, Path], tmp_path: Path
) -> None:
    root = chroot
    old, new = sorted(packages, key=lambda v: int(v.rsplit("-", 1)[1]))
    clock = [time.monotonic()]

    def phase(name: str) -> None:
        now = time.monotonic()
        print(f"  {name}: {now - clock[0]:.0f}s", flush=True)
        clock[0] = now

    for version, deb in packages.items():
        shutil.copy(deb, root / "tmp" / deb.name)
        info = run(["dpkg-deb", "--field", str(deb), "Depends", "Version"]).stdout
        assert "rtpengine-daemon" in info and "python3.11" in info and version in info, info

    # Install N with no network at all.
    started = time.monotonic()
    dpkg_offline(root, "-i", f"/tmp/{packages[old].name}")
    install_s = time.monotonic() - started
    status = in_chroot(root, "dpkg-query", "-W", "-f=${Status} ${Version}", "callto").stdout
    assert status == f"install ok installed {old}", status

    # The system user, the data folder, the config (a conffile), the unit, the files' owners.
    passwd = in_chroot(root, "getent", "passwd", "callto").stdout.strip().split(":")
    assert int(passwd[2]) < 1000 and passwd[5] == "/var/lib/callto" and passwd[6] == "/usr/sbin/nologin", passwd
    assert in_chroot(root, "getent", "group", "callto").returncode == 0
    assert stat_of(root, "/var/lib/callto") == ("700", "callto", "callto")
    assert stat_of(root, "/etc/callto/callto.toml") == ("640", "root", "callto")
    assert stat_of(root, "/lib/systemd/system/callto.service") == ("644", "root", "root")
    assert stat_of(root, "/usr/bin/callto") == ("755", "root", "root")
    assert stat_of(root, "/opt/callto/bin/callto") == ("755", "root", "root")
    conffiles = in_chroot(root, "dpkg-query", "-W", "-f=${Conffiles}", "callto").stdout
    assert "/etc/callto/callto.toml" in conffiles, conffiles
    config = (root / "etc/callto/callto.toml").read_text()
    assert all(not line.strip() or line.startswith("#") for line in config.splitlines()), "defaults must be commented"
    assert "# http_port = 8080" in config and '# rtpengine = "auto"' in config
    not_root = in_chroot(root, "find", "/opt/callto", "(", "!", "-user", "root", "-o", "-perm", "/022", ")",
                         "!", "-type", "l").stdout
    assert not_root == "", f"files under /opt/callto not root's or writable by others:\n{not_root[:2000]}"
    assert (root / "etc/systemd/system/multi-user.target.wants/callto.service").is_symlink(), "unit not enabled"
    assert in_chroot(root, "/usr/bin/callto", "--version").stdout.strip().startswith("callto ")

    phase("install N and check files")

    # The unit: hardening as documented, and systemd's own check.
    unit = unit_settings(root)
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "ReadWritePaths": "/var/lib/callto", "CapabilityBoundingSet": "",
                       "AmbientCapabilities": "", "User": "callto"}.items():
        assert unit.get(key) == [value], f"{key}={unit.get(key)}"
    verify = in_chroot(root, "systemd-analyze", "verify", "callto.service", check=False)
    assert verify.returncode == 0 and not (verify.stdout + verify.stderr).strip(), verify.stdout + verify.stderr

    # The sandbox the service runs in below (as the unit's): only its state folder is writable.
    assert run(as_the_unit(root, "/usr/bin/touch /var/tmp/callto-probe"), check=False).returncode != 0
    run(as_the_unit(root, "/usr/bin/touch /var/lib/callto/probe"))
    (root / "var/lib/callto/probe").unlink()

    with process_group(tmp_path / "logs") as procs:
        # N serves, as the unit's ExecStart would, and the CLI (as root: it switches to callto) adds a user.
        server, health, _ = serve_until_healthy(root, procs)
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text
        in_chroot(root, "/usr/bin/callto", "admin", "user", "add", "alice", "--password", "alice-secret-1")
        assert server.stop() in (0, -15), server.tail()
        assert stat_of(root, "/var/lib/callto/callto.db")[1:] == ("callto", "callto")
        assert stat_of(root, "/var/lib/callto/callto.db")[0] == "600", "the unit's UMask=0077 was not applied"
        assert probe_runs(root) is None
        users_before = db_rows(root, "SELECT username FROM users ORDER BY username")
        phase("verify the unit, serve N, add a user with the CLI")

        # Upgrade to N+1 in place: the admin's settings kept, no migration before the service starts...
        dpkg_offline(root, "-i", f"/tmp/{packages[new].name}")
        assert in_chroot(root, "dpkg-query", "-W", "-f=${Version}", "callto").stdout == new
        assert "# --- test settings ---" in (root / "etc/callto/callto.toml").read_text(), "conffile edit lost"
        assert stat_of(root, "/etc/callto/callto.toml") == ("640", "root", "callto")
        assert probe_runs(root) is None, "dpkg ran migrations itself, outside the service"
        # ... then ExecStartPre migrates, once, before ExecStart serves; serving migrates nothing more.

        def migrated_before_serving() -> None:
            assert probe_runs(root) == 1, "ExecStartPre did not apply the new migration"

        server, health, pre_output = serve_until_healthy(root, procs, after_pre=migrated_before_serving)
        assert health.status_code == 200, health.text
        assert "database is up to date" in pre_output
        assert server.stop() in (0, -15), server.tail()
    assert probe_runs(root) == 1, "serving ran the new migration again"
    heads = {r[0] for r in db_rows(root, "SELECT version_num FROM alembic_version")}
    assert PROBE_REVISION in heads, heads
    assert db_rows(root, "SELECT username FROM users ORDER BY username") == users_before
    assert ("alice",) in users_before

    phase("upgrade to N+1, migrate, serve N+1")

    # Remove: program gone, data, config and user kept.
    dpkg_offline(root, "-r", "callto")
    assert not (root / "opt/callto").exists() and not (root / "usr/bin/callto").exists()
    assert (root / "var/lib/callto/callto.db").is_file() and (root / "etc/callto/callto.toml").is_file()
    assert in_chroot(root, "getent", "passwd", "callto").returncode == 0
    assert in_chroot(root, "dpkg-query", "-W", "-f=${Status}", "callto").stdout == "deinstall ok config-files"

    # Purge: user, group, data and config gone.
    dpkg_offline(root, "-P", "callto")
    assert not (root / "var/lib/callto").exists() and not (root / "etc/callto").exists()
    assert in_chroot(root, "getent", "passwd", "callto", check=False).returncode == 2
    assert in_chroot(root, "getent", "group", "callto", check=False).returncode == 2
    assert "callto.toml" not in in_chroot(root, "dpkg-statoverride", "--list", check=False).stdout
    phase("remove and purge")
    print(f"dpkg -i of {packages[old].name} ({packages[old].stat().st_size >> 20} MiB): {install_s:.0f}s")
