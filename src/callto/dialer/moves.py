"""Moving a user's live call to another of their own devices: the checks and words around the switch.

The switch does the SIP part (:mod:`callto.sip.move`); this module checks that the device is the user's
(403 ``device-not-owned`` otherwise), waits for the outcome and turns the switch's reason ids into errors
with stable ids: ``no-live-call`` (404: no answered call of the user's, or the call named is someone
else's), ``same-device``, ``device-not-registered``, ``move-running`` (409), ``move-failed`` (409, the
target did not take the call; ``details.reason`` says why and the call stays where it was) and
``switch-unavailable`` (503).
"""

from __future__ import annotations

from typing import Any, Protocol

from callto.directory.service import DirectoryService
from callto.errors import CalltoError, Conflict, Forbidden, NotFound, Unavailable


class CallMover(Protocol):
    """The switch: move the user's answered call to one of their devices; ``(ok, reason id)``."""

    async def move_call(
        self, user_id: str, device_id: str, call_id: str | None = None, *, auto_answer: bool = True
    ) -> tuple[bool, str]: ...


class NoLiveCall(NotFound):
    error = "no-live-call"


class MoveConflict(Conflict):
    error = "move-failed"


_REFUSALS: dict[str, tuple[type[CalltoError], str, str]] = {
    "no-call": (NoLiveCall, "no-live-call", "you have no answered call to move"),
    "same-device": (MoveConflict, "same-device", "the call is already on that device"),
    "not-registered": (MoveConflict, "device-not-registered", "that device is not registered now"),
    "not-your-device": (Forbidden, "device-not-owned", "that device is not one of yours"),
    "move-running": (MoveConflict, "move-running", "the call is already being moved or transferred"),
    "switch-down": (Unavailable, "switch-unavailable", "the SIP switch is not running"),
}

# why a target did not take the call, in words for logs and API clients without translations
_FAILURES = {
    "no-answer": "the device did not answer",
    "busy": "the device is busy",
    "declined": "the call was declined on the device",
    "unreachable": "the device could not be reached",
    "peer-refused": "the other party's phone refused the change",
    "media-failed": "the media relay could not join the two devices",
    "call-ended": "the call ended while the device rang",
}


async def move_call(
    directory: DirectoryService,
    mover: CallMover | None,
    user_id: int,
    device_id: int,
    call_id: str | None,
    *,
    auto_answer: bool = True,
) -> dict[str, Any]:
    """Move ``user_id``'s call to ``device_id``; the answer once the device talks, or an error."""
    directory.own_device(user_id, device_id)  # 403 device-not-owned for someone else's or no device
    if mover is None:
        raise Unavailable("the SIP switch is not running", error="switch-unavailable")
    ok, reason = await mover.move_call(str(user_id), str(device_id), call_id, auto_answer=auto_answer)
    if ok:
        return {"moved": True, "device_id": device_id, "call_id": call_id}
    refusal = _REFUSALS.get(reason)
    details: dict[str, Any] = {"device_id": device_id}
    if call_id is not None:
        details["call_id"] = call_id
    if refusal is not None:
        kind, error, message = refusal
        raise kind(message, error=error, details=details)
    details["reason"] = reason
    raise MoveConflict(f"the call stays where it was: {_FAILURES.get(reason, reason)}", details=details)
