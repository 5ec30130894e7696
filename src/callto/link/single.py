"""One Link per user: a second launch hands its URL to the running Link over a local socket and exits.

The running Link listens on a per-user local socket (a Unix socket, or a named pipe on Windows) through
``QLocalServer``. ``callto-link "tel:..."`` first tries to connect: when it can, it sends
``{"urls": [...]}`` as one JSON line, waits for ``ok`` and exits at once; when nobody answers it becomes
the instance itself. A socket left behind by a crashed Link is removed when nobody answers on it.
"""

from __future__ import annotations

import getpass
import json
import os
import re

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from callto.link import APP_ID

FORWARD_TIMEOUT_MS = 1500
MAX_MESSAGE = 64 * 1024


def instance_name() -> str:
    """Per-user socket name (``CALLTO_LINK_INSTANCE`` overrides it, so tests never meet a real Link)."""
    override = os.environ.get("CALLTO_LINK_INSTANCE")
    if override:
        return override
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return f"{APP_ID}-{re.sub(r'[^A-Za-z0-9_.-]', '_', user)}"


def forward(
    urls: list[str], name: str | None = None, timeout_ms: int = FORWARD_TIMEOUT_MS, *, ping: bool = False
) -> bool:
    """Hand ``urls`` to the running Link; True when it confirmed, False when no Link is running.

    With no URLs the running Link shows itself (a second plain launch); ``ping`` only asks if it lives.
    """
    sock = QLocalSocket()
    sock.connectToServer(name or instance_name())
    if not sock.waitForConnected(timeout_ms):
        return False
    payload = (json.dumps({"urls": urls, "ping": ping}) + "\n").encode()
    sock.write(payload)
    sock.flush()
    # flush() often writes everything at once; waitForBytesWritten() is then False with nothing pending.
    if sock.bytesToWrite() > 0 and not sock.waitForBytesWritten(timeout_ms):
        sock.abort()
        return False
    answer = b""
    while b"\n" not in answer:
        if not sock.waitForReadyRead(timeout_ms):
            break
        answer += bytes(sock.readAll().data())
    sock.disconnectFromServer()
    return answer.strip() == b"ok"


class SingleInstance(QObject):
    """The running Link's side: emits ``url_received`` for each forwarded URL, ``activated`` for none."""

    url_received = Signal(str)
    activated = Signal()

    def __init__(self, name: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name or instance_name()
        self.server = QLocalServer(self)
        # Only this user may connect: another user's process must not be able to make us dial.
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self.server.newConnection.connect(self._on_connection)
        self._buffers: dict[QLocalSocket, bytes] = {}

    def listen(self) -> bool:
        """Become the instance. False when another live Link already is (then forward to it instead)."""
        if self.server.listen(self.name):
            return True
        if forward([], self.name, timeout_ms=500, ping=True):
            return False
        # Nobody answers: a stale socket file from a Link that crashed. Take its place.
        QLocalServer.removeServer(self.name)
        return self.server.listen(self.name)

    def close(self) -> None:
        self.server.close()

    def _on_connection(self) -> None:
        while self.server.hasPendingConnections():
            sock = self.server.nextPendingConnection()
            self._buffers[sock] = b""
            sock.readyRead.connect(lambda s=sock: self._on_ready(s))
            sock.disconnected.connect(lambda s=sock: self._forget(s))

    def _forget(self, sock: QLocalSocket) -> None:
        self._buffers.pop(sock, None)
        sock.deleteLater()

    def _on_ready(self, sock: QLocalSocket) -> None:
        buf = self._buffers.get(sock, b"") + bytes(sock.readAll().data())
        if len(buf) > MAX_MESSAGE:
            sock.abort()
            return
        if b"\n" not in buf:
            self._buffers[sock] = buf
            return
        line = buf.split(b"\n", 1)[0]
        self._buffers[sock] = b""
        try:
            msg = json.loads(line)
            urls = [u for u in msg.get("urls", []) if isinstance(u, str)]
        except (ValueError, AttributeError):
            sock.write(b"bad\n")
            sock.flush()
            return
        sock.write(b"ok\n")
        sock.flush()
        if msg.get("ping"):
            return
        if urls:
            for url in urls:
                self.url_received.emit(url)
        else:
            self.activated.emit()
