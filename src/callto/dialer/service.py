"""Click-to-call: a clicked number becomes a call on the user's own device.

Normalize and authorize once, pick the device, then try that device's strategies in order, recording
each attempt, until one starts the call. Nothing is dialed for a number that did not normalize.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from callto.dialer.calls import Attempt, CallBook, ClickCall
from callto.dialer.dialplan import DialPlan
from callto.dialer.errors import CallFailed, CallNotFound, DeviceOffline, NoMainDevice, NoMobile
from callto.dialer.numbers import InvalidNumber, Number, check_allowed, normalize
from callto.dialer.ports import DeskPhone, DeskPhones, OriginateRequest, Originator
from callto.directory.errors import DeviceNotOwned
from callto.directory.generation import GenerationCache, Token
from callto.directory.service import DeviceView, DirectoryService, UserView
from callto.errors import CalltoError, InvalidInput
from callto.events.hub import CommandTimeout, NoSession, SessionHub
from callto.phones.http import build_action_request, phone_http

log = logging.getLogger(__name__)

DESK_STRATEGIES = ("phone_http", "lan_relay", "originate")
KNOWN_STRATEGIES = frozenset(DESK_STRATEGIES)
DIALPLAN_KEY = "dialplan"
STRATEGIES_KEY = "click_to_call.desk_strategies"
NUMBERS_KEPT = 4096
NO_PHONE_TARGET = "the phone's web address or credentials are not known"


class StrategyFailed(Exception):
    def __init__(self, reason: str, outcome: str = "failed") -> None:
        super().__init__(reason)
        self.reason = reason
        self.outcome = outcome


# a strategy to try, or its failure when known before trying it
Step = Callable[[], Awaitable[None]] | StrategyFailed


def desk_strategy_order(configured: tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """The configured order, unknown names dropped, with ``originate`` always last: a click never dies
    because a phone's HTTP API failed."""
    chosen = [s for s in (configured or DESK_STRATEGIES) if s in KNOWN_STRATEGIES and s != "originate"]
    return (*dict.fromkeys(chosen), "originate")


class DialerService:
    def __init__(
        self,
        directory: DirectoryService,
        hub: SessionHub,
        calls: CallBook,
        *,
        originator: Originator | None = None,
        desk_phones: DeskPhones | None = None,
        command_timeout: float = 3.0,
        phone_timeout: float = 2.0,
    ) -> None:
        self.directory = directory
        self.hub = hub
        self.calls = calls
        self.originator = originator
        self.desk_phones = desk_phones
        self.command_timeout = command_timeout
        self.phone_timeout = phone_timeout
        # The dial plan and the strategy order sit on every click's path: kept in memory while the
        # directory generation is unchanged (put_setting bumps it, on whichever node or process).
        self._settings: GenerationCache[str, Any] = GenerationCache(max_entries=8)
        # Clicked numbers, normalized under the plan in use: parsing an external number with its metadata
        # costs ~150 us of CPU, on every click before the INVITE; users click the same numbers again.
        self._numbers: tuple[DialPlan | None, dict[str, Number]] = (None, {})
        if calls.cluster is not None:
            # Another node asks this one, which placed the call, to hang it up.
            calls.cluster.link.handle("call.hangup", self._hangup_for_node)

    # settings
    def dial_plan(self, token: Token | None = None) -> DialPlan:
        plan: DialPlan = self._settings.load(
            DIALPLAN_KEY, token or self.directory.generation.current(),
            lambda: DialPlan.from_settings(self.directory.get_setting(DIALPLAN_KEY) or {}),
        )
        return plan

    def set_dial_plan(self, data: dict[str, Any]) -> DialPlan:
        plan = DialPlan.from_settings(data)
        self.directory.put_setting(DIALPLAN_KEY, plan.model_dump(mode="json"))
        return plan

    def desk_strategies(self, token: Token | None = None) -> tuple[str, ...]:
        order: tuple[str, ...] = self._settings.load(
            STRATEGIES_KEY, token or self.directory.generation.current(),
            lambda: desk_strategy_order(self.directory.get_setting(STRATEGIES_KEY)),
        )
        return order

    def warm(self) -> None:
        """Read at start what every click needs (the dial plan and the phone-number metadata behind it,
        the strategy order): the first click after a start measured ~10 ms slower without it."""
        plan = self.dial_plan()
        self.desk_strategies()
        for sample in ("100", "+39 0721 405516", "0721 405516"):
            with contextlib.suppress(InvalidNumber):
                normalize(sample, plan)

    def _normalize(self, raw: str, plan: DialPlan) -> Number:
        """``normalize`` remembered per plan (a new plan object, after a change, starts afresh); a
        :class:`Number` is immutable, and a number that does not normalize is not remembered."""
        cached_plan, numbers = self._numbers
        if cached_plan is not plan:
            numbers = {}
            self._numbers = (plan, numbers)
        number = numbers.get(raw)
        if number is None:
            number = normalize(raw, plan)
            if len(numbers) >= NUMBERS_KEPT:
                numbers.clear()
            numbers[raw] = number
        return number

    def _cached(self, key: str, token: Token) -> Any:
        hit, value = self._settings.get(key, token)
        return value if hit else None

    def set_desk_strategies(self, strategies: list[str]) -> tuple[str, ...]:
        unknown = [s for s in strategies if s not in KNOWN_STRATEGIES]
        if unknown:
            raise InvalidInput(
                f"unknown strategies: {', '.join(unknown)}", details={"known": sorted(KNOWN_STRATEGIES)}
            )
        order = desk_strategy_order(strategies)
        self.directory.put_setting(STRATEGIES_KEY, list(order))
        return order

    # placing calls
    async def place(
        self, user: UserView, to: str, device_ref: int | str | None = None, *, auto_answer: bool = False,
        generation: Token | None = None,
    ) -> ClickCall:
        """Place the click. ``generation``: the directory generation ``user`` was read under (the
        request's :class:`~callto.directory.auth.Principal` has it), to answer as of the same moment."""
        # Everything below comes from memory when nothing changed since the last click (the usual case):
        # no query and no worker thread; a thread only for what has to be read again.
        token = generation or await self.directory.token()
        plan = self._cached(DIALPLAN_KEY, token) or await asyncio.to_thread(self.dial_plan, token)
        number = self._normalize(to, plan)
        check_allowed(number, user.outbound)
        if device_ref == "mobile":
            return await self._place_mobile(user, to, number, plan)
        device = self._pick_device(user, device_ref)
        call = ClickCall(user_id=user.id, to=to, number=number, device_id=device.id, device_kind=device.kind)
        if device.kind in ("webphone", "link"):
            self.calls.add(call)
            steps: list[tuple[str, Step]] = [
                ("session", lambda: self._via_session(call, user, device))
            ]
        else:
            # A desk phone's INVITE (or its HTTP request) goes first; ``call.dialing`` on the next loop
            # turn, before anything the phone can answer is read (and before any later event of the call).
            self.calls.add(call, announce=False)
            asyncio.get_running_loop().call_soon(self.calls.announce, call.id)
            phone = await self._desk_phone_now(device.id, token)
            order = desk_strategy_order(phone.strategies if phone and phone.strategies else None)
            if not (phone and phone.strategies):
                order = self._cached(STRATEGIES_KEY, token) or await asyncio.to_thread(self.desk_strategies, token)
            steps = [(name, self._desk_step(name, call, user, device, phone, auto_answer)) for name in order]
        await self._run(call, steps)
        self.calls.share(call)  # with the strategy that worked and its attempts, as the 202 says
        return call

    def _pick_device(self, user: UserView, device_ref: int | str | None) -> DeviceView:
        if device_ref is None:
            device = user.main_device
            if device is None:
                raise NoMainDevice(
                    "you have no main device: choose one in Settings (web phone, Link or desk phone)"
                )
            return device
        if isinstance(device_ref, str):
            if not device_ref.isdigit():
                raise DeviceNotOwned("that device is not one of yours", details={"device_id": device_ref})
            device_ref = int(device_ref)
        device = user.device(device_ref)
        if device is None:
            raise DeviceNotOwned("that device is not one of yours", details={"device_id": device_ref})
        return device

    def _desk_phone(self, device_id: int) -> DeskPhone | None:
        return None if self.desk_phones is None else self.desk_phones.desk_phone(device_id)

    async def _desk_phone_now(self, device_id: int, token: Token) -> DeskPhone | None:
        if self.desk_phones is None:
            return None
        hit, phone = self.desk_phones.cached_desk_phone(device_id, token)
        if hit:
            return phone
        return await asyncio.to_thread(self.desk_phones.desk_phone, device_id)

    async def _run(self, call: ClickCall, steps: list[tuple[str, Step]]) -> None:
        for name, step in steps:
            attempt = Attempt(strategy=name)
            call.attempts.append(attempt)
            if isinstance(step, StrategyFailed):  # known before trying: no coroutine, nothing raised
                attempt.outcome, attempt.reason = step.outcome, step.reason
                continue
            started = time.monotonic()
            try:
                await step()
            except StrategyFailed as exc:
                attempt.outcome, attempt.reason = exc.outcome, exc.reason
                continue
            except Exception as exc:  # a strategy's bug must not lose the click: try the next one
                log.exception("strategy %s failed unexpectedly", name)
                attempt.outcome, attempt.reason = "failed", f"internal error: {exc.__class__.__name__}"
                continue
            finally:
                attempt.elapsed_ms = (time.monotonic() - started) * 1000
            attempt.outcome = "ok"
            call.strategy = name
            return
        reasons = "; ".join(f"{a.strategy}: {a.reason}" for a in call.attempts)
        self.calls.update(call.id, "failed", reasons)
        details = {"call_id": call.id, "attempts": [a.to_json() for a in call.attempts]}
        if call.device_kind in ("webphone", "link") and call.attempts[-1].outcome == "skipped":
            label = "web phone" if call.device_kind == "webphone" else "callto Link"
            raise DeviceOffline(
                f"your {label} is not connected: open it (or pick another main device) and try again",
                details=details,
            )
        raise CallFailed(f"the call could not be started ({reasons})", details=details)

    # strategies
    async def _via_session(self, call: ClickCall, user: UserView, device: DeviceView) -> None:
        data = {"call_id": call.id, "to": call.to, "number": call.number.to_json(), "device_id": device.id}
        try:
            ack = await self.hub.command(user.id, device.id, "dial", data, self.command_timeout)
        except NoSession as exc:
            raise StrategyFailed("no connected session", outcome="skipped") from exc
        except CommandTimeout as exc:
            raise StrategyFailed(exc.message) from exc
        if not ack.get("ok", False):
            raise StrategyFailed(str(ack.get("reason") or "the device refused the call"))

    def _desk_step(
        self, name: str, call: ClickCall, user: UserView, device: DeviceView, phone: DeskPhone | None,
        auto_answer: bool,
    ) -> Step:
        if name in ("phone_http", "lan_relay") and (phone is None or phone.target is None):
            # the usual desk phone (no web credentials): both skipped before the INVITE, with no
            # coroutine and no exception each (the attempts say so, as when tried)
            return StrategyFailed(NO_PHONE_TARGET, outcome="skipped")
        if name == "phone_http":
            return lambda: self._phone_http(call, phone)
        if name == "lan_relay":
            return lambda: self._lan_relay(call, user, phone)
        return lambda: self._originate(call, user, device, auto_answer)

    async def _phone_http(self, call: ClickCall, phone: DeskPhone | None) -> None:
        if phone is None or phone.target is None:
            raise StrategyFailed(NO_PHONE_TARGET, outcome="skipped")
        result = await phone_http(phone.target, "call", number=call.number.dialed, timeout=self.phone_timeout)
        if not result.ok:
            raise StrategyFailed(f"{result.outcome.value}: {result.detail}")

    async def _lan_relay(self, call: ClickCall, user: UserView, phone: DeskPhone | None) -> None:
        if phone is None or phone.target is None:
            raise StrategyFailed(NO_PHONE_TARGET, outcome="skipped")
        link = next((d for d in user.devices if d.kind == "link"), None)
        if link is None or not self.hub.reachable(user.id, link.id):
            raise StrategyFailed("callto Link is not connected for this user", outcome="skipped")
        request = build_action_request(phone.target, "call", number=call.number.dialed)
        data = {"device_id": phone.device_id, "request": request.to_json(), "timeout": self.phone_timeout}
        try:
            result = await self.hub.command(
                user.id, link.id, "lan_relay", data, self.phone_timeout + self.command_timeout
            )
        except (NoSession, CommandTimeout) as exc:
            raise StrategyFailed(exc.message) from exc
        if not result.get("ok", False):
            raise StrategyFailed(f"Link could not reach the phone: {result.get('reason') or 'failed'}")

    async def _originate(self, call: ClickCall, user: UserView, device: DeviceView, auto_answer: bool) -> None:
        if self.originator is None:
            raise StrategyFailed("the SIP switch is not running", outcome="skipped")
        result = await self.originator.originate(
            OriginateRequest(
                call_id=call.id,
                user_id=user.id,
                device_sip_username=device.sip_username,
                destination=call.number,
                auto_answer=auto_answer,
                caller_display=user.display_name,
            )
        )
        if not result.ok:
            raise StrategyFailed(result.reason or "the switch could not ring the phone")

    async def _place_mobile(self, user: UserView, to: str, number: Number, plan: DialPlan) -> ClickCall:
        if not user.mobile:
            raise NoMobile("you have no mobile number on file; ask your administrator to add it")
        try:
            mobile = self._normalize(user.mobile, plan)
        except InvalidNumber as exc:
            raise NoMobile(f"your mobile number on file is not usable: {exc.message}") from exc
        call = ClickCall(user_id=user.id, to=to, number=number, device_id="mobile", device_kind="mobile")
        self.calls.add(call, announce=False)  # the trunk's INVITE first, as for a desk phone
        asyncio.get_running_loop().call_soon(self.calls.announce, call.id)

        async def callback() -> None:
            if self.originator is None:
                raise StrategyFailed("the SIP switch is not running", outcome="skipped")
            result = await self.originator.originate(
                OriginateRequest(
                    call_id=call.id, user_id=user.id, device_sip_username=None, destination=number,
                    first_leg_number=mobile, caller_display=user.display_name,
                )
            )
            if not result.ok:
                raise StrategyFailed(result.reason or "the trunk could not call your mobile")

        await self._run(call, [("callback", callback)])
        return call

    # the call afterwards
    def get(self, user_id: int, call_id: str) -> ClickCall:
        """A call placed through this node."""
        call = self.calls.local(call_id)
        if call is None or call.user_id != user_id:
            raise CallNotFound("there is no such call of yours", details={"call_id": call_id})
        return call

    async def find(self, user_id: int, call_id: str) -> dict[str, Any]:
        """The call as the API shows it, placed through this node or any other (its shared record)."""
        call = self.calls.local(call_id)
        if call is not None:
            if call.user_id != user_id:
                raise CallNotFound("there is no such call of yours", details={"call_id": call_id})
            return call.to_json()
        record = await self._record(user_id, call_id)
        found: dict[str, Any] = record["call"]
        return found

    async def hangup_anywhere(self, user_id: int, call_id: str) -> dict[str, Any]:
        """Hang up a call placed through this node, or ask the node that placed it to."""
        if self.calls.local(call_id) is not None:
            return (await self.hangup(user_id, call_id)).to_json()
        record = await self._record(user_id, call_id)
        cluster = self.calls.cluster
        assert cluster is not None  # a record exists only with a cluster
        wait = self.command_timeout + self.phone_timeout + 2.0
        return await cluster.link.request(
            str(record["node"]), "call.hangup", {"user_id": user_id, "call_id": call_id}, wait,
            errors={CallNotFound.error: CallNotFound},
        )

    async def _record(self, user_id: int, call_id: str) -> dict[str, Any]:
        try:
            record = await self.calls.record(call_id)
        except Exception as exc:  # Redis down: the call may well exist on another node
            raise CalltoError(
                "the calls of the other nodes cannot be read right now", error="storage-unavailable",
                status=503, details={"call_id": call_id, "retry_after": 2},
            ) from exc
        if record is None or record.get("user_id") != user_id or not isinstance(record.get("call"), dict):
            raise CallNotFound("there is no such call of yours", details={"call_id": call_id})
        return record

    async def _hangup_for_node(self, request: dict[str, Any]) -> dict[str, Any]:
        return (await self.hangup(int(request["user_id"]), str(request["call_id"]))).to_json()

    async def hangup(self, user_id: int, call_id: str) -> ClickCall:
        call = self.get(user_id, call_id)
        if call.state in ("ended", "failed"):
            return call
        if call.strategy in ("originate", "callback") and self.originator is not None:
            await self.originator.hangup(call.id)
        elif call.strategy == "session" and isinstance(call.device_id, int):
            try:
                await self.hub.command(user_id, call.device_id, "hangup", {"call_id": call.id}, self.command_timeout)
            except (NoSession, CommandTimeout):
                log.info("hangup of %s: the device session did not answer", call.id)
        elif call.strategy == "phone_http" and isinstance(call.device_id, int):
            phone = await asyncio.to_thread(self._desk_phone, call.device_id)
            if phone and phone.target:
                await phone_http(phone.target, "hangup", timeout=self.phone_timeout)
        self.calls.update(call.id, "ended", "hung up by the user")
        return call
