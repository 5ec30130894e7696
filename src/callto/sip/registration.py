"""The REGISTER path of the asyncio driver: the registrar's answer, held back by the digest throttle.

Owns what the driver does with a REGISTER the load shedder let through: ask the registrar, slow or block
a source that keeps guessing passwords (its answer leaves later, at most ``MAX_DELAYED`` held at once,
then 503), note which stream connections carry a registration (they get the longer idle rule), and hand
the registrar's events to ``on_event``. :class:`RegisterDriving` is mixed into
:class:`~callto.sip.server.SipServer`, whose state (endpoint, registrar, throttle, listeners) it uses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from callto.sip.endpoint import RequestReceived, SipEndpoint
from callto.sip.errors import SipLocalError
from callto.sip.registrar import Registrar, RegistrarEvent, RegistrarReply
from callto.sip.throttle import DigestThrottle
from callto.sip.transport import TcpListener

log = logging.getLogger("callto.sip.server")

MAX_DELAYED = 10_000  # answers the throttle may hold at once; above, slowed sources get 503 at once


class RegisterDriving:
    """REGISTER handling of :class:`~callto.sip.server.SipServer` (the attributes below are the server's)."""

    endpoint: SipEndpoint | None
    registrar: Registrar
    throttle: DigestThrottle
    on_event: Callable[[RegistrarEvent], None] | None
    registered_conns: set[int]
    tcp: TcpListener | None
    tls: TcpListener | None
    clock: Callable[[], float]
    _loop: asyncio.AbstractEventLoop | None
    _delayed: int

    def pump(self) -> None:
        raise NotImplementedError  # the server's

    def _on_register(self, event: RequestReceived, now: float) -> None:
        endpoint = self.endpoint
        assert endpoint is not None and event.tx_id is not None
        host = event.source.addr[0]
        delay = self.throttle.delay_for(host, now)
        try:
            reply = self.registrar.handle_register(event.request, event.source, now)
        except Exception:  # a store or credentials failure: answer, do not leave the phone retrying
            log.exception("REGISTER handling failed")
            endpoint.reply(event.tx_id, 500, now, "Server Internal Error (registrar)")
            return
        if reply.failed_username is not None:
            delay += self.throttle.failed(host, reply.failed_username, now)
        elif reply.status == 200:
            self.throttle.succeeded(host, now)
        if delay > 0 and self._loop is not None:
            if self._delayed < MAX_DELAYED:
                # slowed: the answer leaves later (the transaction absorbs retransmissions meanwhile)
                self._delayed += 1
                self._loop.call_later(delay, self._delayed_reply, event.tx_id, reply)
                return
            reply = RegistrarReply(503, "Service Unavailable", [("Retry-After", "10")])
        endpoint.reply(event.tx_id, reply.status, now, reply.reason, headers=reply.headers)
        conn_id = event.source.conn_id
        if reply.status == 200 and conn_id is not None:
            self._note_registration(conn_id, any(name == "Contact" for name, _ in reply.headers))
        for ev in reply.events:
            self.emit(ev)

    def _delayed_reply(self, tx_id: int, reply: RegistrarReply) -> None:
        self._delayed -= 1
        endpoint = self.endpoint
        if endpoint is None:
            return
        try:
            endpoint.reply(tx_id, reply.status, self.clock(), reply.reason, headers=reply.headers)
        except SipLocalError:  # the transaction ended meanwhile (its connection closed)
            return
        self.pump()

    def _note_registration(self, conn_id: int, registered: bool) -> None:
        """A REGISTER on connection ``conn_id`` succeeded: it carries a registration (longer idle rule) while
        the device keeps bindings, as far as this connection can tell."""
        if registered:
            self.registered_conns.add(conn_id)
        else:
            self.registered_conns.discard(conn_id)
        for listener in (self.tcp, self.tls):
            if listener is not None and conn_id in listener.conns:
                listener.mark_registered(conn_id, registered)

    def emit(self, event: RegistrarEvent) -> None:
        """Hand a registrar event to ``on_event`` (a handler failure is logged, not raised)."""
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("sip on_event handler failed")
