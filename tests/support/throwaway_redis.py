"""A Redis server of a test's own on a free loopback port, for outage tests (the machine's shared Redis is
never stopped): start it, stop it to make the outage, start it again (empty: it keeps nothing on disk)."""

from __future__ import annotations

import socket

from support.ports import free_port
from support.procs import ManagedProcess, ProcessGroup


class ThrowawayRedis:
    def __init__(self, procs: ProcessGroup) -> None:
        self.procs = procs
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: ManagedProcess | None = None

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = self.procs.start(argv, name="redis")
        self.process.wait_until(self.listening, 10, "redis-server listening")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
        except OSError:
            return False
        return True
