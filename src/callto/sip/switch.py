"""The running switch: registrar, B2BUA, trunks and origination behind one asyncio object.

Owns the composition of the SIP pieces for ``callto serve``: a :class:`~callto.sip.server.SipServer`
(UDP/TCP sockets, endpoint, registrar) extended so that every endpoint event reaches the B2BUA and the
trunk registrations, their timers are armed with the server's one timer, and messages for WebSocket
connections go to the send callables the HTTP server's ``/sip`` route hands in. The API the rest of
callto uses: :meth:`SipSwitch.originate` / :meth:`~SipSwitch.hangup` for the dialer, :meth:`set_trunks` /
:meth:`trunk_summary` for the admin API, :meth:`registrations` and :meth:`user_call_state` for devices and
presence, and ``ws_connection_made`` / ``ws_message`` / ``ws_connection_lost`` for SIP over WebSocket
(RFC 7118).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from callto.sip.b2bua import (
    B2BUA,
    B2BUAConfig,
    CallAnsweredHandler,
    CallEventHandler,
    CallRecord,
    CallRecordHandler,
    Disposition,
    MayCall,
)
from callto.sip.endpoint import (
    CancelReceived,
    EndpointConfig,
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
)
from callto.sip.errors import SipLocalError
from callto.sip.location import next_hop
from callto.sip.media_driver import MediaDriver
from callto.sip.message import Headers, Request, new_tag
from callto.sip.move import MOVE_RING_TIMEOUT, MoveRefused, start_move
from callto.sip.origination import DEFAULT_AUTO_ANSWER, OriginationSpec, originate
from callto.sip.overload import OverloadConfig
from callto.sip.ports import (
    ActiveCall,
    ActiveCallStore,
    Binding,
    BindingStore,
    Credentials,
    NotifyResult,
    NumberKind,
    OriginateRequest,
    OriginateResult,
)
from callto.sip.recovery import bye_for
from callto.sip.registrar import RegistrarConfig, RegistrarEvent
from callto.sip.server import SipServer
from callto.sip.throttle import SecurityEvent
from callto.sip.transfer import install as install_transfer
from callto.sip.transfer import with_transfer
from callto.sip.transport import Addr, ConnectionLimits
from callto.sip.trunk import TrunkConfig, TrunkRegistrations, TrunkRouter, ip_literal, resolve_host

log = logging.getLogger(__name__)

_DID_NOT_RING = "the device did not ring"
WsSend = Callable[[str], "Awaitable[None] | None"]


@dataclass(frozen=True)
class SwitchConfig:
    domain: str
    host: str = "127.0.0.1"
    port: int = 5060
    tcp: bool = True
    ring_timeout: float = 30.0
    user_agent: str = "callto"
    registrar: RegistrarConfig | None = None
    endpoint: EndpointConfig | None = None
    tls_context: ssl.SSLContext | None = None
    tls_port: int = 0
    # SIP over WebSocket arrives on the HTTP server's ports: named in our Via and Contact on those flows
    ws_port: int = 0
    wss_port: int = 0
    connection_limits: ConnectionLimits | None = None
    overload: OverloadConfig | None = None


class SipSwitch:
    """``await SipSwitch(...).start()``; see the module docstring for the API."""

    def __init__(
        self,
        config: SwitchConfig,
        credentials: Credentials,
        bindings: BindingStore,
        media: Any = None,
        *,
        on_registration_event: Callable[[RegistrarEvent], None] | None = None,
        on_call_event: CallEventHandler | None = None,
        on_call_record: CallRecordHandler | None = None,
        may_call: MayCall | None = None,
        user_for_extension: Callable[[str], str | None] | None = None,
        route_did: Callable[[str, str], str | None] | None = None,
        auto_answer_for: Callable[[str], tuple[str, str] | None] | None = None,
        vendor_auto_answer: Callable[[str, str], tuple[str, str] | None] | None = None,
        manage_media: bool = False,
        clock: Callable[[], float] = time.time,
        active_calls: ActiveCallStore | None = None,
        node: str = "local",
        on_call_answered: CallAnsweredHandler | None = None,
        security_event: SecurityEvent | None = None,
    ) -> None:
        self.config = config
        self.on_call_answered = on_call_answered
        self.active_calls = active_calls
        self.node = node
        self.credentials = credentials
        self.media = media
        self.manage_media = manage_media
        self.on_call_event = on_call_event
        self.on_call_record = on_call_record
        self.may_call = may_call
        self.user_for_extension = user_for_extension
        self.route_did = route_did
        self.auto_answer_for = auto_answer_for
        # (User-Agent, SIP domain) -> the vendor's auto-answer header: the phones catalog, passed in by
        # the composition root so the switch imports no feature package
        self.vendor_auto_answer = vendor_auto_answer
        self.clock = clock
        self.server = SipServer(
            config.host,
            config.port,
            config.domain,
            credentials,
            bindings,
            on_registration_event,
            on_request=self._on_request_hook,
            on_transaction_event=self._handle,
            next_timer=self._next_timer,
            on_timer=self._on_timer,
            on_connection_lost=self._connection_lost,
            security_event=security_event,
            overload=config.overload,
            registrar_config=config.registrar,
            endpoint_config=with_transfer(config.endpoint or EndpointConfig(domain=config.domain)),
            tcp=config.tcp,
            clock=clock,
            tls_context=config.tls_context,
            tls_port=config.tls_port,
            listen_ports={"ws": config.ws_port, "wss": config.wss_port},
            connection_limits=config.connection_limits,
        )
        self.router = TrunkRouter()
        self._resolved: dict[str, str] = {}  # trunk host name -> IP, from the last look-up in a worker thread
        self._trunks: list[TrunkConfig] = []
        self.b2bua: B2BUA | None = None
        self.trunk_registrations: TrunkRegistrations | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ws_by_ext: dict[str, int] = {}  # the /sip route's id -> the server's connection id
        self._notifies: dict[int, asyncio.Future[int | None]] = {}

    # --- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.manage_media and self.media is not None:
            await self.media.start()
        await self.server.start()
        endpoint = self.server.endpoint
        assert endpoint is not None
        host, port = endpoint.config.via_host, endpoint.config.via_port
        self.b2bua = B2BUA(
            B2BUAConfig(
                self.config.domain,
                host,
                port,
                self.config.ring_timeout,
                self.config.user_agent,
                contact_ports=endpoint.config.listen_ports,
            ),
            endpoint,
            self.credentials,
            self.server.registrar,
            self.server.registrar.digest,
            user_for_extension=self.user_for_extension,
            may_call=self.may_call,
            route_did=self.route_did,
            trunks=self.router,
            media=self.media,
            on_call_record=self.on_call_record,
            on_call_event=self.on_call_event,
            active_calls=self.active_calls,
            node=self.node,
            on_call_answered=self.on_call_answered,
        )
        install_transfer(self.b2bua)
        if self.media is not None:
            MediaDriver(self.media, self.clock, self.server.pump, self._spawn).attach(self.b2bua)
        self.trunk_registrations = TrunkRegistrations(endpoint, host, port)
        self.set_trunks(self._trunks)
        self.end_calls_left_over()

    def merge_bindings(self, stored: list[Binding]) -> None:
        """Take in the bindings other nodes accepted (see :meth:`Registrar.merge_stored`), reporting the
        devices that came online or went offline here too."""
        events = self.server.registrar.merge_stored(stored, self.clock())
        for event in events:
            self.server.emit(event)

    def merge_binding_changes(self, changed: list[Binding], gone: list[tuple[str, str]]) -> None:
        """Take in the bindings another node just wrote (see :meth:`Registrar.merge_changes`)."""
        for event in self.server.registrar.merge_changes(changed, gone, self.clock()):
            self.server.emit(event)

    def end_calls_left_over(self) -> int:
        """End the calls this node had answered when it last died (kill -9, power loss): a BYE to every
        leg along its recorded route, and the call's history record (``server-restart``). Returns how many."""
        if self.active_calls is None:
            return 0
        left = self.active_calls.load_node(self.node)
        if left:
            log.warning("ending %d call(s) left over by the previous run of this node", len(left))
        return self.end_calls(left, "server-restart")

    def end_calls(self, calls: list[ActiveCall], cause: str) -> int:
        """End answered calls this process never carried (left over by a crash of this node, or taken over
        from a dead node): BYE each leg inside its dialog, record the call once (its record completes the
        entry written at the answer, or stands for it if that never landed), forget it."""
        store, endpoint = self.active_calls, self.server.endpoint
        if store is None or endpoint is None:
            return 0
        now = self.clock()
        for active in calls:
            for leg in active.legs:
                request, dest = bye_for(leg)
                try:
                    endpoint.send_request(request, dest, now)
                except SipLocalError as exc:
                    log.warning("cannot end leg %s of call %s left over: %s", leg.call_id, active.call_id, exc)
            record = CallRecord(
                call_id=active.call_id,
                direction=active.direction,
                caller_user_id=active.caller_user_id,
                caller_device_id=active.caller_device_id,
                callee_user_id=active.callee_user_id,
                devices_rung=list(active.devices_rung),
                from_number=active.from_number,
                to_number=active.to_number,
                started_at=active.started_at,
                answered_at=active.answered_at,
                ended_at=now,
                disposition=Disposition.ANSWERED,
                hangup_cause=cause,
                answered_device_id=active.answered_device_id,
                trunk_id=active.trunk_id,
                click_id=active.click_id,
            )
            if self.on_call_record is not None:
                try:
                    self.on_call_record(record)
                except Exception:
                    log.exception("recording call %s left over failed", active.call_id)
            store.drop(active.call_id)
        if calls:
            self.server.pump()
        return len(calls)

    async def stop(self) -> None:
        if self.b2bua is not None:
            now = self.clock()
            for call_id in list(self.b2bua.calls):
                self.b2bua.hangup(call_id, now)
            self.server.pump()
        if self.trunk_registrations is not None:
            self.trunk_registrations.configure([], {}, self.clock())
            self.server.pump()
        for task in list(self._tasks):
            task.cancel()
        await self.server.stop()
        if self.manage_media and self.media is not None:
            await self.media.stop()

    @property
    def port(self) -> int:
        return self.server.port

    # --- trunks ------------------------------------------------------------------------------------------
    def set_trunks(self, trunks: list[TrunkConfig]) -> None:
        """Replace the trunk list (admin API changes); registrations follow at once."""
        self._trunks = list(trunks)
        self.router.set(self._trunks, self._known_addresses(self._trunks))
        self._configure_trunk_registrations()
        if self.trunk_registrations is not None and any(ip_literal(t.host) is None for t in self._trunks):
            # Host names are looked up (again: they may have moved) off the loop, so a slow resolver never
            # stalls the calls; meanwhile the last address found for that name is used.
            self._spawn(self._resolve_trunk_hosts(self._trunks))

    def _known_addresses(self, trunks: list[TrunkConfig]) -> dict[str, str]:
        return {t.id: self._resolved[t.host] for t in trunks if t.host in self._resolved}

    def _configure_trunk_registrations(self) -> None:
        if self.trunk_registrations is None:
            return
        waiting = {t.id for t in self.router.unresolved()}
        ready = [t for t in self._trunks if t.id not in waiting]  # nothing is sent to a name not yet resolved
        dests = {t.id: self.router.dest(t) for t in ready}
        self.trunk_registrations.configure(ready, dests, self.clock())
        self.server.pump()

    async def _resolve_trunk_hosts(self, trunks: list[TrunkConfig]) -> None:
        for host in {t.host for t in trunks if ip_literal(t.host) is None}:
            address = await resolve_host(host)
            if ip_literal(address) is None:
                if host not in self._resolved:
                    log.warning("trunk host %s cannot be resolved; its trunk stays unregistered until it is saved "
                                "again", host)
            else:
                self._resolved[host] = address
        if trunks is not self._trunks:
            return  # the list changed meanwhile: its own look-up applies
        self.router.set(self._trunks, self._known_addresses(self._trunks))
        self._configure_trunk_registrations()

    def trunk_summary(self) -> list[dict[str, Any]]:
        out = []
        for trunk in self._trunks:
            registered, error = (
                self.trunk_registrations.status(trunk.id) if self.trunk_registrations is not None else (False, None)
            )
            out.append(
                {
                    "id": trunk.id,
                    "name": trunk.name,
                    "register": trunk.register,
                    "registered": registered,
                    "last_error": error,
                }
            )
        return out

    # --- devices and calls -------------------------------------------------------------------------------
    def registrations(self, device_id: str) -> list[dict[str, Any]]:
        return [
            {
                "contact": b.contact,
                "expires_at": b.expires_at,
                "registered_at": b.registered_at,
                "source": f"{b.source_transport}:{b.source_host}:{b.source_port}",
                "user_agent": b.user_agent,
            }
            for b in self.server.registrar.bindings(device_id)
        ]

    def user_call_state(self, user_id: str) -> str:
        return self.b2bua.user_call_state(str(user_id)) if self.b2bua is not None else "idle"

    async def originate(self, request: OriginateRequest) -> OriginateResult:
        """Ring the first leg; answer as soon as it rings (ok) or fails; the rest runs in the background."""
        b2bua = self.b2bua
        if b2bua is None:
            return OriginateResult(False, "the SIP switch is not running")
        destination = request.destination
        is_extension = destination.kind == NumberKind.EXTENSION
        target = (destination.extension or destination.dialed) if is_extension else destination.dialed
        header: tuple[str, str] | None = None
        if request.auto_answer:
            if request.device_sip_username is not None:
                if self.auto_answer_for is not None:
                    header = self.auto_answer_for(request.device_sip_username)
                else:
                    header = self._vendor_auto_answer(request.device_sip_username)
            if header is None:
                name, value = DEFAULT_AUTO_ANSWER
                header = (name, value.replace("{host}", self.config.domain))
        spec = OriginationSpec(
            call_id=request.call_id,
            user_id=str(request.user_id),
            destination=target,
            destination_is_extension=is_extension,
            destination_display=destination.display or target,
            device_sip_username=request.device_sip_username,
            first_leg_number=request.first_leg_number.dialed if request.first_leg_number is not None else None,
            auto_answer_header=header,
            caller_display=request.caller_display,
        )
        loop = asyncio.get_running_loop()
        result: asyncio.Future[tuple[bool, str]] = loop.create_future()

        def on_result(ok: bool, reason: str) -> None:
            if not result.done():
                result.set_result((ok, reason))

        originate(b2bua, spec, self.clock(), on_result)
        self.server.pump()  # the INVITE leaves here; the rest of the click waits for its answer
        if result.done():
            ok, reason = result.result()
            return OriginateResult(ok, reason, {"call_id": request.call_id})
        # The B2BUA's ring timer answers before this; a timer handle, not asyncio.wait_for (a task and
        # more callbacks per click), is the safety net.
        timer = loop.call_later(self.config.ring_timeout + 5, on_result, False, _DID_NOT_RING)
        try:
            ok, reason = await result
        finally:
            timer.cancel()
        if reason is _DID_NOT_RING and not ok:
            b2bua.hangup(request.call_id, self.clock())
            self.server.pump()
        return OriginateResult(ok, reason, {"call_id": request.call_id} if reason is not _DID_NOT_RING else {})

    def _vendor_auto_answer(self, sip_username: str) -> tuple[str, str] | None:
        """The auto-answer header of the vendor the device's User-Agent names (``vendor_auto_answer``), if any."""
        if self.vendor_auto_answer is None:
            return None
        account = self.credentials.lookup(sip_username)
        if account is None:
            return None
        agents = [b.user_agent for b in self.server.registrar.bindings(account.device_id) if b.user_agent]
        if not agents:
            return None
        return self.vendor_auto_answer(agents[0], self.config.domain)

    async def move_call(
        self, user_id: str, device_id: str, call_id: str | None = None, *, auto_answer: bool = True
    ) -> tuple[bool, str]:
        """Move ``user_id``'s answered call to their device ``device_id`` (see :mod:`callto.sip.move`):
        ``(True, "moved")`` once the target talks, or ``(False, reason id)`` and the call stays where it was."""
        b2bua = self.b2bua
        if b2bua is None:
            return False, "switch-down"
        header: tuple[str, str] | None = None
        if auto_answer:
            agents = [b.user_agent for b in self.server.registrar.bindings(device_id) if b.user_agent]
            if agents and self.vendor_auto_answer is not None:
                header = self.vendor_auto_answer(agents[0], self.config.domain)
            if header is None:
                name, value = DEFAULT_AUTO_ANSWER
                header = (name, value.replace("{host}", self.config.domain))
        loop = asyncio.get_running_loop()
        result: asyncio.Future[tuple[bool, str]] = loop.create_future()

        def on_result(ok: bool, reason: str) -> None:
            if not result.done():
                result.set_result((ok, reason))

        ring = min(self.config.ring_timeout, MOVE_RING_TIMEOUT)
        try:
            start_move(b2bua, str(user_id), str(device_id), self.clock(), on_result, call_id=call_id,
                       auto_answer=header, ring_timeout=ring)
        except MoveRefused as exc:
            return False, exc.reason
        finally:
            self.server.pump()
        # the move's ring timer answers first; this bounds the wait should a media request never return
        try:
            return await asyncio.wait_for(asyncio.shield(result), ring + 15)
        except TimeoutError:
            return False, "no-answer"

    async def hangup(self, call_id: str) -> bool:
        if self.b2bua is None:
            return False
        done = self.b2bua.hangup(call_id, self.clock())
        self.server.pump()
        return done

    # --- provisioning: ask a phone to fetch its configuration again ------------------------------------------
    async def check_sync(self, device_id: int, sip_username: str, event: str) -> NotifyResult:
        """Unsolicited NOTIFY ``Event: check-sync...`` to each contact the device registered; the first
        final answer from any of them decides."""
        endpoint = self.server.endpoint
        bindings = self.server.registrar.bindings(str(device_id))
        if endpoint is None or not bindings:
            return NotifyResult(False, "not-registered", "the phone is not registered")
        loop = asyncio.get_running_loop()
        waiters: list[asyncio.Future[int | None]] = []
        now = self.clock()
        for binding in bindings:
            # Along the binding's Path (the edge that carried its REGISTER, which may be another node's
            # way to the phone), as an INVITE to it goes; with no Path, to where the REGISTER came from.
            dest, route = next_hop(binding)
            headers = Headers([
                ("From", f"<sip:{self.config.domain}>;tag={new_tag()}"),
                ("To", f"<sip:{sip_username}@{self.config.domain}>"),
                ("Call-ID", f"{new_tag()}@{self.config.domain}"),
                ("CSeq", "1 NOTIFY"),
                ("Event", event),
                ("Subscription-State", "terminated;reason=timeout"),
                ("Content-Length", "0"),
            ])
            for hop in route:
                headers.add("Route", hop)
            request = Request("NOTIFY", binding.contact, headers)
            waiter: asyncio.Future[int | None] = loop.create_future()
            tx_id = endpoint.send_request(request, dest, now)
            self._notifies[tx_id] = waiter
            waiters.append(waiter)
        self.server.pump()
        try:
            done, _ = await asyncio.wait(waiters, timeout=8.0, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for tx_id in [t for t, w in self._notifies.items() if w in waiters]:
                del self._notifies[tx_id]
        statuses = [w.result() for w in done if not w.cancelled()]
        if not statuses or statuses[0] is None:
            return NotifyResult(False, "timeout", "the phone did not answer the NOTIFY")
        status = statuses[0]
        if 200 <= status < 300:
            return NotifyResult(True, "sent", f"the phone answered {status}")
        return NotifyResult(False, "rejected", f"the phone answered {status}")

    # --- SIP over WebSocket (fed by the HTTP server's /sip route) ---------------------------------------------
    def ws_connection_made(
        self, conn_id: str | int, addr: Addr, send: WsSend, *, secure: bool = False,
        close: Callable[[], None] | None = None,
    ) -> None:
        """A WebSocket with the ``sip`` subprotocol opened; ``send(text)`` writes one text frame and
        ``close()`` closes the socket (the route then calls :meth:`ws_connection_lost`)."""
        if self.server.endpoint is None:
            return

        def sink(data: bytes, close_after: bool) -> bool:
            if data:
                outcome = send(data.decode("utf-8", "surrogateescape"))
                if inspect.isawaitable(outcome):
                    self._spawn(_await(outcome))
            if close_after:
                if close is None:
                    return False
                close()
            return True

        transport = "wss" if secure else "ws"
        self._ws_by_ext[str(conn_id)] = self.server.attach_stream((addr[0], addr[1]), transport, sink)

    def ws_message(self, conn_id: str | int, data: str | bytes) -> None:
        """One SIP message (one WebSocket frame, RFC 7118 5)."""
        ours = self._ws_by_ext.get(str(conn_id))
        if ours is None:
            return
        raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
        if not raw.strip(b"\r\n\x00 "):
            return  # keepalive
        self.server.receive_message(ours, raw)

    def ws_registered(self, conn_id: str | int) -> bool:
        """Whether a REGISTER with bindings came over this WebSocket (it then gets the longer idle rule)."""
        ours = self._ws_by_ext.get(str(conn_id))
        return ours is not None and ours in self.server.registered_conns

    def ws_connection_lost(self, conn_id: str | int) -> None:
        ours = self._ws_by_ext.pop(str(conn_id), None)
        if ours is not None:
            self.server.detach_stream(ours)

    def drop_device(self, device_id: str) -> int:
        """A device was removed: close the stream connections (TCP, TLS, WebSocket) its bindings came over
        and forget the bindings, so it is offline at once and its credentials stop working on open flows.
        Returns how many connections were closed. Each node drops its own (the bindings it holds)."""
        server = self.server
        conns = {b.conn_id for b in server.registrar.bindings(device_id) if b.conn_id is not None}
        closed = sum(1 for conn_id in conns if server.close_stream(conn_id))
        for event in server.registrar.remove_device(device_id):
            server.emit(event)
        server.pump()
        return closed

    # --- plumbing ----------------------------------------------------------------------------------------
    def _handle(
        self, event: ResponseReceived | TransactionTimedOut | CancelReceived | RequestReceived, now: float
    ) -> bool:
        if isinstance(event, ResponseReceived | TransactionTimedOut) and event.tx_id in self._notifies:
            waiter = self._notifies[event.tx_id]
            if waiter.done():
                return True
            if isinstance(event, TransactionTimedOut):
                waiter.set_result(None)
            elif event.response.status >= 200:
                waiter.set_result(event.response.status)
            return True
        regs = self.trunk_registrations
        if regs is not None and isinstance(event, ResponseReceived) and regs.owns(event.tx_id):
            assert event.tx_id is not None
            regs.handle_response(event.tx_id, event.response, now)
            return True
        if regs is not None and isinstance(event, TransactionTimedOut) and regs.owns(event.tx_id):
            regs.handle_timeout(event.tx_id, now)
            return True
        if self.b2bua is None:
            return False
        return self.b2bua.handle_event(event, now)

    def _on_request_hook(self, event: RequestReceived | CancelReceived, server: SipServer) -> bool:
        return self._handle(event, self.clock())

    def _connection_lost(self, conn_id: int) -> None:
        if self.b2bua is not None:
            self.b2bua.connection_lost(conn_id, self.clock())

    def _next_timer(self) -> float | None:
        times = [
            t for t in (
                self.b2bua.get_timer() if self.b2bua is not None else None,
                self.trunk_registrations.get_timer() if self.trunk_registrations is not None else None,
            ) if t is not None
        ]
        return min(times) if times else None

    def _on_timer(self, now: float) -> None:
        if self.b2bua is not None:
            self.b2bua.handle_timer(now)
        if self.trunk_registrations is not None:
            self.trunk_registrations.handle_timer(now)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _await(outcome: Awaitable[None]) -> None:
    try:
        await outcome
    except Exception as exc:  # a closed socket: the transaction layer notices on its own
        log.debug("websocket send failed: %s", exc)
