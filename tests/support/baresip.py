"""Headless baresip (Debian's 1.0) as a test softphone / desk phone, driven over ``ctrl_tcp``.

Each :class:`Baresip` gets its own config dir: ``net_interface 127.0.0.1``, a free SIP port (UDP+TCP),
``audio_source aufile,<tone.wav>`` (plays the tone once: make it longer than the call), players on
``aubridge,nil`` (no sound card), ``sndfile`` recording what is sent (``*-enc.wav``) and received
(``*-dec.wav``) per call, and ``ctrl_tcp`` (netstring-framed JSON) for commands and events. Modules:
``g711 aufile aubridge sndfile account menu ctrl_tcp`` (all in Debian's ``baresip-core``).

The API is blocking (a reader thread collects events); from async code call it through
``await asyncio.to_thread(phone.wait_established)`` so the event loop keeps serving the switch.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.ports import LOOPBACK, free_port, free_port_with_tls_neighbour
from support.procs import ManagedProcess, ProcessGroup

MODULES = ("g711", "aufile", "aubridge", "sndfile", "account", "menu", "ctrl_tcp")
MODULE_PATH = Path("/usr/lib/baresip/modules")


class BaresipError(RuntimeError):
    """A command failed, or an awaited event did not come; carries the last events and log tail."""


@dataclass(frozen=True)
class Account:
    """One baresip account line.

    ``aor`` is the address of record (``sip:201@callto.local``). ``outbound`` is where requests go
    (``sip:127.0.0.1:5060;transport=tcp``): the registrar/proxy. ``regint=0`` means never REGISTER.
    ``answermode`` is ``manual`` (call :meth:`Baresip.answer`), ``auto`` or ``early``.
    """

    aor: str
    password: str | None = None
    auth_user: str | None = None
    outbound: str | None = None
    regint: int = 3600
    answermode: str = "manual"
    extra: str = ""

    def line(self) -> str:
        params = [f"answermode={self.answermode}", f"regint={self.regint}"]
        if self.auth_user:
            params.append(f"auth_user={self.auth_user}")
        if self.password is not None:
            params.append(f"auth_pass={self.password}")
        if self.outbound:
            params.append(f'outbound="{self.outbound}"')
        params.append("audio_codecs=PCMU,PCMA")
        if self.extra:
            params.append(self.extra)
        return f"<{self.aor}>;" + ";".join(params)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# "201@callto.test: {0/UDP/v4} 200 OK () [1 binding]" / "reg: sip:201@callto.test: 403 Forbidden ()"
_REGISTRATION = re.compile(r"^(?:\S+: \{\d+/\w+/v[46]\} (2\d\d [^\n]*)|reg: \S+: (\d{3} [^\n]*))$", re.M)


def _netstring(payload: bytes) -> bytes:
    return str(len(payload)).encode() + b":" + payload + b","


class Baresip:
    def __init__(
        self,
        workdir: Path,
        procs: ProcessGroup,
        *,
        name: str,
        tone_wav: Path,
        account: Account | None = None,
        answermode: str = "auto",
        extra_config: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.extra_config = extra_config  # more config lines (``sip_cafile <ca.pem>`` for TLS)
        self.dir = workdir / f"baresip-{name}"
        self.rec_dir = self.dir / "rec"
        self.procs = procs
        self.tone_wav = tone_wav
        self.sip_port = free_port_with_tls_neighbour()
        self.ctrl_port = free_port("tcp")
        while self.ctrl_port in (self.sip_port, self.sip_port + 1):
            self.ctrl_port = free_port("tcp")
        # Without a registrar the phone is reached directly at its listen address.
        self.account = account or Account(aor=f"sip:{name}@{LOOPBACK}:{self.sip_port}", regint=0, answermode=answermode)
        self.events: list[dict[str, Any]] = []
        self._consumed: dict[str, int] = {}
        self._responses: dict[str, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._token = 0
        self._registrations_seen = 0
        self.process: ManagedProcess | None = None

    @property
    def uri(self) -> str:
        """Where another peer reaches this phone directly (no registrar)."""
        user = self.account.aor.split(":", 1)[1].split("@", 1)[0]
        return f"sip:{user}@{LOOPBACK}:{self.sip_port}"

    def write_config(self) -> None:
        self.rec_dir.mkdir(parents=True, exist_ok=True)
        config = [
            "poll_method epoll",
            f"sip_listen {LOOPBACK}:{self.sip_port}",
            f"net_interface {LOOPBACK}",
            f"audio_source aufile,{self.tone_wav}",
            "audio_player aubridge,nil",
            "audio_alert aubridge,nil",
            "audio_srate 8000",
            "audio_channels 1",
            f"module_path {MODULE_PATH}",
            *(f"module {m}.so" for m in MODULES),
            f"snd_path {self.rec_dir}",
            f"ctrl_tcp_listen {LOOPBACK}:{self.ctrl_port}",
            *self.extra_config,
            "",
        ]
        (self.dir / "config").write_text("\n".join(config))
        (self.dir / "accounts").write_text(self.account.line() + "\n")
        (self.dir / "contacts").write_text("")

    def start(self, timeout: float = 10.0) -> Baresip:
        self.write_config()
        self.process = self.procs.start(["baresip", "-f", str(self.dir)], name=f"baresip-{self.name}")
        self.process.wait_for_output(r"baresip is ready", timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._sock = socket.create_connection((LOOPBACK, self.ctrl_port), timeout=1.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BaresipError(f"{self.name}: ctrl_tcp never listened:\n{self.process.tail()}") from None
                time.sleep(0.05)
        self._sock.settimeout(None)
        self._reader = threading.Thread(
            target=self._read_loop, args=(self._sock,), name=f"baresip-{self.name}", daemon=True
        )
        self._reader.start()
        return self

    def _read_loop(self, sock: socket.socket) -> None:
        buf = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._cond.notify_all()
                return
            buf += chunk
            while True:
                head, sep, rest = buf.partition(b":")
                if not sep or not head.isdigit():
                    break
                size = int(head)
                if len(rest) < size + 1:
                    break
                payload, buf = rest[:size], rest[size + 1 :]
                try:
                    message = json.loads(payload)
                except ValueError:
                    continue
                with self._cond:
                    if message.get("event"):
                        self.events.append(message)
                    elif message.get("response"):
                        self._responses[str(message.get("token"))] = message
                    self._cond.notify_all()

    def command(self, command: str, params: str = "", timeout: float = 5.0) -> str:
        """Run a ``menu`` command (``dial``, ``accept``, ``hangup``, ...) and return its text output."""
        if self._sock is None:
            raise BaresipError(f"{self.name} is not started")
        with self._cond:
            self._token += 1
            token = str(self._token)
        request = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._sock.sendall(_netstring(request))
        with self._cond:
            if not self._cond.wait_for(lambda: token in self._responses, timeout):
                raise BaresipError(f"{self.name}: no response to {command!r}")
            response = self._responses.pop(token)
        if not response.get("ok", False):
            raise BaresipError(f"{self.name}: {command} {params!r} failed: {response.get('data')}")
        return str(response.get("data", ""))

    def wait_event(self, *types: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next not yet awaited event of one of ``types`` (each event is handed out once per type)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for kind in types:
                    start = self._consumed.get(kind, 0)
                    for index in range(start, len(self.events)):
                        if self.events[index].get("type") == kind:
                            self._consumed[kind] = index + 1
                            return self.events[index]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        seen = [e.get("type") for e in self.events[-15:]]
        tail = self.process.tail(15) if self.process else ""
        raise BaresipError(f"{self.name}: no {'/'.join(types)} within {timeout}s; events {seen}\n{tail}")

    def wait_registered(self, timeout: float = 10.0) -> str:
        """Wait for the next registration outcome; return its status line, raise on failure.

        Read from baresip's log, not from ctrl_tcp events: the first REGISTER goes out while baresip
        starts, before a control client can connect, and events are not replayed.
        """
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            outcomes = _REGISTRATION.findall(_ANSI.sub("", self.process.output()))
            if len(outcomes) > self._registrations_seen:
                ok_line, failure = outcomes[self._registrations_seen]
                self._registrations_seen += 1
                if failure:
                    raise BaresipError(f"{self.name}: registration failed: {failure.strip()}")
                return str(ok_line).strip()
            if time.monotonic() > deadline or not self.process.alive():
                raise BaresipError(f"{self.name}: no registration outcome within {timeout}s\n{self.process.tail()}")
            time.sleep(0.05)

    def dial(self, uri: str) -> None:
        self.command("dial", uri)

    def answer(self) -> None:
        self.command("accept")

    def hangup(self) -> None:
        self.command("hangup")

    def wait_incoming(self, timeout: float = 10.0) -> dict[str, Any]:
        return self.wait_event("CALL_INCOMING", timeout=timeout)

    def wait_ringing(self, timeout: float = 10.0) -> dict[str, Any]:
        return self.wait_event("CALL_RINGING", timeout=timeout)

    def wait_established(self, timeout: float = 10.0) -> dict[str, Any]:
        return self.wait_event("CALL_ESTABLISHED", timeout=timeout)

    def wait_closed(self, timeout: float = 10.0) -> dict[str, Any]:
        """The call ended; the event's ``param`` holds the reason (e.g. ``486 Busy Here``)."""
        return self.wait_event("CALL_CLOSED", timeout=timeout)

    def _newest(self, suffix: str) -> Path:
        files = sorted(self.rec_dir.glob(f"*{suffix}"), key=lambda p: p.stat().st_mtime)
        if not files:
            raise BaresipError(f"{self.name}: no *{suffix} in {self.rec_dir}")
        return files[-1]

    def received_wav(self) -> Path:
        """What this phone heard in its latest call (complete once the call is closed)."""
        return self._newest("-dec.wav")

    def sent_wav(self) -> Path:
        return self._newest("-enc.wav")

    def stop(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.sendall(_netstring(json.dumps({"command": "quit", "token": "quit"}).encode()))
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._sock = None
        if self.process is not None:
            self.process.stop()
        if self._reader is not None:
            self._reader.join(5)
