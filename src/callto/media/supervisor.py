"""Runs Debian's rtpengine for callto and offers the switch a small :class:`MediaService`.

Owns the rtpengine process lifecycle (start on loopback or a configured interface, wait until it
answers ``ping``, restart it with bounded backoff when it dies, stop it cleanly) and the
``media.rtpengine`` setting: ``auto`` (start it when the binary exists, else media is unavailable),
``off`` (never relay media), ``host:port`` (an rtpengine run elsewhere), or several ``host:port``
separated by commas (a pool of relays shared by many nodes: each call sticks to one, new calls avoid one
that stopped answering).

A supervised rtpengine never outlives its server: the child asks the kernel for SIGKILL when its
parent dies (``PR_SET_PDEATHSIG``, so a ``kill -9`` of callto takes rtpengine with it), and a start
first ends an rtpengine that an earlier run of this server left behind in the same run folder (its
pidfile names it), so a restart never leaves two.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from callto.errors import InvalidInput
from callto.media.errors import MediaUnavailable
from callto.media.rtpengine import NgClient, wait_until_ready

log = logging.getLogger(__name__)

DEFAULT_BINARY_PATHS = ("/usr/bin/rtpengine", "/usr/sbin/rtpengine")


class MediaService(Protocol):
    """What the SIP switch asks of the media layer (SDP in, rewritten SDP out)."""

    def available(self) -> bool: ...

    @property
    def reason(self) -> str:
        """Why media is (un)available, for logs and the ``media-unavailable`` error message."""
        ...

    async def offer(self, call_id: str, from_tag: str, sdp: str, flags: Mapping[str, Any]) -> str: ...

    async def answer(self, call_id: str, from_tag: str, to_tag: str, sdp: str, flags: Mapping[str, Any]) -> str: ...

    async def delete(self, call_id: str, from_tag: str) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class MediaSettings:
    """``rtpengine`` is ``auto`` | ``off`` | ``host:port``; the rest only matters for ``auto``."""

    rtpengine: str = "auto"
    interface: str = "127.0.0.1"
    port_min: int = 30000
    port_max: int = 30999
    binary: str | None = None
    run_dir: Path | None = None
    ready_timeout: float = 10.0
    request_timeout: float = 1.0
    request_retries: int = 2


def find_rtpengine(explicit: str | None = None) -> Path | None:
    """The rtpengine binary: ``explicit`` if given (and executable), else PATH, else Debian's path."""
    candidates: list[str] = []
    if explicit:
        candidates.append(explicit)
    else:
        found = shutil.which("rtpengine")
        if found:
            candidates.append(found)
        candidates.extend(DEFAULT_BINARY_PATHS)
    for candidate in candidates:
        path = Path(candidate)
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when this process dies (Linux only).

    ``PR_SET_PDEATHSIG`` fires when the thread that forked the child ends, so the child must be started
    from a thread that lives as long as the server: the event loop's. If the parent died between the
    fork and the ``prctl``, the child would never be told, so it checks and exits at once.
    """
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def end_stale_rtpengine(pid_path: Path, *, wait: float = 3.0) -> int | None:
    """End an rtpengine that an earlier run left behind with this pidfile; return its pid, or None.

    Only a process whose command line is rtpengine *with this very pidfile* is touched, so a pid that
    was reused by something else, or another server's rtpengine, is left alone.
    """
    try:
        pid = int(pid_path.read_text().strip())
    except (OSError, ValueError):
        return None
    argv = _cmdline(pid)
    if not argv or "rtpengine" not in Path(argv[0]).name or f"--pidfile={pid_path}" not in argv:
        return None
    log.warning("ending rtpengine pid %s left behind by an earlier run (%s)", pid, pid_path)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and _cmdline(pid):
        time.sleep(0.05)
    if _cmdline(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pid


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def parse_hostport(value: str) -> tuple[str, int]:
    host, sep, port_text = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidInput(
            "media.rtpengine must be 'auto', 'off', 'host:port' or several 'host:port' separated by commas, "
            f"not {value!r}",
            details={"setting": "media.rtpengine", "value": value},
        )
    return host, int(port_text)


class RtpengineSupervisor:
    """One rtpengine child process, kept alive.

    The ng port is picked once (free UDP port on 127.0.0.1) and kept across restarts so clients keep
    their address. Backoff between restarts doubles from ``backoff_initial`` to ``backoff_max`` and
    resets once a process has stayed up for ``stable_after`` seconds.
    """

    def __init__(
        self,
        binary: Path,
        *,
        interface: str = "127.0.0.1",
        port_min: int = 30000,
        port_max: int = 30999,
        run_dir: Path | None = None,
        ng_port: int | None = None,
        ready_timeout: float = 10.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        stable_after: float = 30.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.binary = binary
        self.interface = interface
        self.port_min = port_min
        self.port_max = port_max
        self._own_run_dir = run_dir is None
        self.run_dir = run_dir or Path(tempfile.mkdtemp(prefix="callto-rtpengine-"))
        self.ng_host = "127.0.0.1"
        self.ng_port = ng_port or free_udp_port(self.ng_host)
        self.ready_timeout = ready_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        self.extra_args = tuple(extra_args)
        self.restarts = 0
        self.last_error: str | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._ready = False
        self._stopping = False
        self._watcher: asyncio.Task[None] | None = None
        self._restarted = asyncio.Event()

    @property
    def log_path(self) -> Path:
        return self.run_dir / "rtpengine.log"

    @property
    def pid_path(self) -> Path:
        return self.run_dir / "rtpengine.pid"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.returncode is None else None

    @property
    def ready(self) -> bool:
        return self._ready and self.pid is not None

    def command(self) -> list[str]:
        return [
            str(self.binary),
            # Without it rtpengine also reads /etc/rtpengine/rtpengine.conf and opens its listeners.
            "--config-file=none",
            f"--interface={self.interface}",
            f"--listen-ng={self.ng_host}:{self.ng_port}",
            "--foreground",
            "--table=-1",  # userspace forwarding only: no kernel module needed
            "--log-stderr",
            f"--port-min={self.port_min}",
            f"--port-max={self.port_max}",
            f"--pidfile={self.pid_path}",
            *self.extra_args,
        ]

    async def start(self, *, keep_trying: bool = False) -> None:
        """Start rtpengine and return once it answers ``ping``; raise ``MediaUnavailable`` otherwise.

        With ``keep_trying`` a failed first start still leaves the supervisor retrying in the
        background (same backoff as for restarts), so a server that booted without media gets it later.
        """
        self._stopping = False
        self.last_error = None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(end_stale_rtpengine, self.pid_path)
        try:
            await self._spawn_ready()
        except MediaUnavailable as exc:
            self.last_error = exc.message
            if keep_trying:
                self._watcher = asyncio.create_task(self._watch(), name="rtpengine-supervisor")
            raise
        self._watcher = asyncio.create_task(self._watch(), name="rtpengine-supervisor")

    async def _spawn_ready(self) -> None:
        self._ready = False
        with self.log_path.open("ab") as log_file:
            self._process = await asyncio.create_subprocess_exec(
                *self.command(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,  # a Ctrl-C meant for callto should not hit rtpengine first
                preexec_fn=die_with_parent(),  # and a kill -9 of callto takes rtpengine with it
            )
        log.info("started rtpengine pid %s (ng %s:%s)", self._process.pid, self.ng_host, self.ng_port)
        probe = NgClient(self.ng_host, self.ng_port, timeout=0.2, retries=0)
        loop = asyncio.get_running_loop()
        try:
            exited = asyncio.ensure_future(self._process.wait())
            ready = asyncio.ensure_future(wait_until_ready(probe, loop.time() + self.ready_timeout))
            done, _ = await asyncio.wait({exited, ready}, return_when=asyncio.FIRST_COMPLETED)
            if ready in done:
                exited.cancel()
                ready.result()
                self._ready = True
                return
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError, MediaUnavailable):
                await ready
            raise MediaUnavailable(
                f"rtpengine exited with status {self._process.returncode} during start-up; see {self.log_path}",
                details={"log": str(self.log_path), "returncode": self._process.returncode},
            )
        except BaseException:
            await self._kill()
            raise
        finally:
            await probe.close()

    async def _watch(self) -> None:
        backoff = self.backoff_initial
        loop = asyncio.get_running_loop()
        while not self._stopping:
            process = self._process
            assert process is not None
            started = loop.time()
            returncode = await process.wait()
            self._ready = False
            if self._stopping:
                return
            if loop.time() - started >= self.stable_after:
                backoff = self.backoff_initial
            log.warning("rtpengine exited with status %s; restarting in %.1fs", returncode, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.backoff_max)
            while not self._stopping:
                try:
                    await self._spawn_ready()
                    self.restarts += 1
                    self._restarted.set()
                    break
                except MediaUnavailable as exc:
                    self.last_error = exc.message
                    log.error("rtpengine restart failed: %s; retrying in %.1fs", exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.backoff_max)

    async def wait_restarts(self, count: int, timeout: float) -> None:
        """Wait until at least ``count`` restarts have succeeded (tests and health checks)."""
        async with asyncio.timeout(timeout):
            while self.restarts < count:
                self._restarted.clear()
                await self._restarted.wait()

    async def _kill(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 5.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def stop(self) -> None:
        """Stop supervising and terminate rtpengine (SIGTERM, then SIGKILL after 5 s)."""
        self._stopping = True
        self._ready = False
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        await self._kill()
        if self._own_run_dir:
            # A temporary run dir is ours alone; a configured one (under the data dir) keeps its log.
            shutil.rmtree(self.run_dir, ignore_errors=True)


class RtpengineMedia:
    """:class:`MediaService` backed by an rtpengine (supervised here, or external at ``host:port``)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        supervisor: RtpengineSupervisor | None = None,
        request_timeout: float = 1.0,
        request_retries: int = 2,
    ) -> None:
        self.supervisor = supervisor
        self.client = NgClient(host, port, timeout=request_timeout, retries=request_retries)
        self._started = False

    @property
    def reason(self) -> str:
        if self.supervisor is not None:
            if self.supervisor.ready:
                return f"rtpengine running (supervised, ng {self.client.address})"
            why = f": {self.supervisor.last_error}" if self.supervisor.last_error else ""
            return f"rtpengine not running (supervised, ng {self.client.address}){why}"
        return f"external rtpengine at {self.client.address}"

    def available(self) -> bool:
        if self.supervisor is not None:
            return self.supervisor.ready
        return self._started

    async def start(self) -> None:
        """Start (or reach) rtpengine. Never raises for a relay that is down: the server must boot anyway,
        and mixed calls then fail with ``media-unavailable`` until the supervisor gets rtpengine up."""
        if self.supervisor is not None:
            try:
                await self.supervisor.start(keep_trying=True)
            except MediaUnavailable as exc:
                log.error("rtpengine did not start: %s; retrying in the background", exc.message)
        else:
            # An external rtpengine may come up later; say so loudly but do not refuse to start.
            try:
                await self.client.ping()
            except MediaUnavailable as exc:
                log.warning("external rtpengine not answering yet: %s", exc)
        await self.client.connect()
        self._started = True

    async def stop(self) -> None:
        self._started = False
        await self.client.close()
        if self.supervisor is not None:
            await self.supervisor.stop()

    def _check(self) -> None:
        if not self.available():
            raise MediaUnavailable(
                f"media relay unavailable: {self.reason}", details={"rtpengine": self.client.address}
            )

    async def offer(self, call_id: str, from_tag: str, sdp: str, flags: Mapping[str, Any]) -> str:
        self._check()
        return await self.client.offer(call_id, from_tag, sdp, flags)

    async def answer(self, call_id: str, from_tag: str, to_tag: str, sdp: str, flags: Mapping[str, Any]) -> str:
        self._check()
        return await self.client.answer(call_id, from_tag, to_tag, sdp, flags)

    async def delete(self, call_id: str, from_tag: str) -> None:
        if not self.available():
            return  # nothing to release: a dead rtpengine forgot the call already
        await self.client.delete(call_id, from_tag)


class RtpenginePool:
    """:class:`MediaService` over several external rtpengines (``host:port,host:port``).

    Every call is pinned to one relay for its whole life (rtpengine keeps the call's state), chosen by
    rendezvous hashing of the Call-ID over the relays not marked down, so nodes that share the pool pick
    the same relay for the same call without talking to each other. A relay that fails a request is
    marked down for ``down_for`` seconds: new calls go to the next relay in the call's order, while calls
    already on it keep asking it (their media is there or nowhere).
    """

    def __init__(
        self,
        addresses: Sequence[tuple[str, int]],
        *,
        request_timeout: float = 1.0,
        request_retries: int = 2,
        down_for: float = 10.0,
    ) -> None:
        self.clients = [NgClient(h, p, timeout=request_timeout, retries=request_retries) for h, p in addresses]
        self.down_for = down_for
        self._down_until: dict[str, float] = {}
        self._pinned: dict[str, NgClient] = {}
        self._started = False

    @property
    def reason(self) -> str:
        up = [c.address for c in self.clients if not self._is_down(c)]
        return f"external rtpengine pool ({len(up)} of {len(self.clients)} answering: {', '.join(up) or 'none'})"

    def available(self) -> bool:
        return self._started

    def _is_down(self, client: NgClient) -> bool:
        return self._down_until.get(client.address, 0.0) > time.monotonic()

    def order(self, call_id: str) -> list[NgClient]:
        """The relays in this call's order of preference (the same on every node)."""

        def weight(client: NgClient) -> bytes:
            return hashlib.blake2b(f"{client.address}|{call_id}".encode(), digest_size=8).digest()

        return sorted(self.clients, key=weight, reverse=True)

    async def start(self) -> None:
        for client in self.clients:
            try:
                await client.ping()
            except MediaUnavailable as exc:
                self._down_until[client.address] = time.monotonic() + self.down_for
                log.warning("rtpengine %s in the pool is not answering yet: %s", client.address, exc)
            await client.connect()
        self._started = True

    async def stop(self) -> None:
        self._started = False
        self._pinned.clear()
        for client in self.clients:
            await client.close()

    async def offer(self, call_id: str, from_tag: str, sdp: str, flags: Mapping[str, Any]) -> str:
        if not self._started:
            raise MediaUnavailable("media relay unavailable: the rtpengine pool is not started", details={})
        pinned = self._pinned.get(call_id)
        if pinned is not None:
            return await pinned.offer(call_id, from_tag, sdp, flags)
        candidates = self.order(call_id)
        # Relays marked down are tried last, not never: when all are down, one may be back.
        candidates.sort(key=self._is_down)
        last: MediaUnavailable | None = None
        for client in candidates:
            try:
                answer = await client.offer(call_id, from_tag, sdp, flags)
            except MediaUnavailable as exc:
                last = exc
                self._down_until[client.address] = time.monotonic() + self.down_for
                log.warning("rtpengine %s did not answer an offer; trying the next relay", client.address)
                continue
            self._down_until.pop(client.address, None)
            self._pinned[call_id] = client
            return answer
        assert last is not None
        raise MediaUnavailable(
            f"media relay unavailable: no rtpengine of the pool answered ({last.message})",
            details={"rtpengines": [c.address for c in self.clients]},
        )

    def _client_of(self, call_id: str) -> NgClient:
        return self._pinned.get(call_id) or self.order(call_id)[0]

    async def answer(self, call_id: str, from_tag: str, to_tag: str, sdp: str, flags: Mapping[str, Any]) -> str:
        return await self._client_of(call_id).answer(call_id, from_tag, to_tag, sdp, flags)

    async def delete(self, call_id: str, from_tag: str) -> None:
        client = self._pinned.pop(call_id, None) or self._client_of(call_id)
        with contextlib.suppress(MediaUnavailable):
            await client.delete(call_id, from_tag)


class NoMedia:
    """:class:`MediaService` when no relay exists: every mixed call fails fast with the reason."""

    def __init__(self, reason: str) -> None:
        self._reason = reason

    @property
    def reason(self) -> str:
        return self._reason

    def available(self) -> bool:
        return False

    async def start(self) -> None:
        log.warning("media relay unavailable: %s; WebRTC <-> RTP calls will be refused", self._reason)

    async def stop(self) -> None:
        return None

    def _fail(self) -> MediaUnavailable:
        return MediaUnavailable(f"media relay unavailable: {self._reason}", details={"reason": self._reason})

    async def offer(self, call_id: str, from_tag: str, sdp: str, flags: Mapping[str, Any]) -> str:
        raise self._fail()

    async def answer(self, call_id: str, from_tag: str, to_tag: str, sdp: str, flags: Mapping[str, Any]) -> str:
        raise self._fail()

    async def delete(self, call_id: str, from_tag: str) -> None:
        return None


def build_media_service(settings: MediaSettings) -> RtpengineMedia | RtpenginePool | NoMedia:
    """Turn the ``media.rtpengine`` setting into a service (not started: call ``await start()``)."""
    mode = settings.rtpengine.strip()
    if mode.lower() == "off":
        return NoMedia("media.rtpengine is 'off'")
    if mode.lower() == "auto":
        binary = find_rtpengine(settings.binary)
        if binary is None:
            where = settings.binary or "PATH, " + ", ".join(DEFAULT_BINARY_PATHS)
            return NoMedia(f"rtpengine binary not found ({where}); install Debian's rtpengine-daemon")
        supervisor = RtpengineSupervisor(
            binary,
            interface=settings.interface,
            port_min=settings.port_min,
            port_max=settings.port_max,
            run_dir=settings.run_dir,
            ready_timeout=settings.ready_timeout,
        )
        return RtpengineMedia(
            supervisor.ng_host,
            supervisor.ng_port,
            supervisor=supervisor,
            request_timeout=settings.request_timeout,
            request_retries=settings.request_retries,
        )
    if "," in mode:
        addresses = [parse_hostport(part.strip()) for part in mode.split(",") if part.strip()]
        return RtpenginePool(
            addresses, request_timeout=settings.request_timeout, request_retries=settings.request_retries
        )
    host, port = parse_hostport(mode)
    return RtpengineMedia(
        host, port, request_timeout=settings.request_timeout, request_retries=settings.request_retries
    )
