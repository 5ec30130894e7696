"""The states of a call and of its legs, what moves them, and the one path an illegal move takes.

Owns :class:`CallState` / :class:`LegState`, the inputs that move them (:class:`CallInput` /
:class:`LegInput`) and the tables :data:`CALL_TRANSITIONS` / :data:`LEG_TRANSITIONS`
(``{state: {input: next_state}}``), in the shape of :mod:`callto.sip.transaction`. Every change of
``Call.state`` or ``Leg.state`` in the B2BUA and its controllers goes through :func:`move_call` /
:func:`move_leg`; a move the table does not list is our own bug and raises :class:`IllegalTransition`
(a :class:`~callto.sip.errors.SipLocalError`, so the B2BUA's entry point logs it and the event is dropped),
here and nowhere else.
"""

from __future__ import annotations

import enum
from typing import Protocol

from callto.sip.errors import SipLocalError


class LegState(enum.Enum):
    CALLING = "calling"
    EARLY = "early"
    CONFIRMED = "confirmed"
    ENDED = "ended"


class CallState(enum.Enum):
    ROUTING = "routing"
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDED = "ended"


class LegInput(enum.Enum):
    PROVISIONAL = "provisional"  # a 1xx other than 100 on our INVITE (or we sent one to the caller)
    CONFIRMED = "confirmed"  # a 2xx on our INVITE, or we answered the caller 2xx
    RETRY = "retry"  # our INVITE goes again with credentials (the trunk challenged it)
    ENDED = "ended"  # refused, cancelled, hung up, timed out, connection lost


class CallInput(enum.Enum):
    RING = "ring"  # branches are being placed (the fork, or the destination of an origination)
    ANSWER = "answer"  # the winning branch's answer reached the caller
    END = "end"


_LIVE = {LegInput.ENDED: LegState.ENDED}

LEG_TRANSITIONS: dict[LegState, dict[LegInput, LegState]] = {
    LegState.CALLING: {
        LegInput.PROVISIONAL: LegState.EARLY,
        LegInput.CONFIRMED: LegState.CONFIRMED,
        LegInput.RETRY: LegState.CALLING,
        **_LIVE,
    },
    LegState.EARLY: {
        LegInput.PROVISIONAL: LegState.EARLY,
        LegInput.CONFIRMED: LegState.CONFIRMED,
        LegInput.RETRY: LegState.CALLING,
        **_LIVE,
    },
    LegState.CONFIRMED: {LegInput.CONFIRMED: LegState.CONFIRMED, **_LIVE},
    # A 2xx may cross our CANCEL (RFC 3261 9.1): the ended leg gets a dialog, so it can be ACKed and BYEd.
    LegState.ENDED: {LegInput.CONFIRMED: LegState.CONFIRMED, LegInput.ENDED: LegState.ENDED},
}

CALL_TRANSITIONS: dict[CallState, dict[CallInput, CallState]] = {
    CallState.ROUTING: {CallInput.RING: CallState.RINGING, CallInput.END: CallState.ENDED},
    CallState.RINGING: {
        CallInput.RING: CallState.RINGING,
        CallInput.ANSWER: CallState.ANSWERED,
        CallInput.END: CallState.ENDED,
    },
    CallState.ANSWERED: {CallInput.END: CallState.ENDED},
    CallState.ENDED: {CallInput.END: CallState.ENDED},
}


class IllegalTransition(SipLocalError):
    """A call or leg was asked to move in a way its table does not allow: a bug of the caller."""


class _HasLegState(Protocol):
    state: LegState


class _HasCallState(Protocol):
    id: str
    state: CallState


def move_leg(leg: _HasLegState, inp: LegInput) -> LegState:
    """Move ``leg`` by ``inp``; its new state."""
    new = LEG_TRANSITIONS[leg.state].get(inp)
    if new is None:
        raise IllegalTransition(f"leg in {leg.state.value} cannot take {inp.value}")
    leg.state = new
    return new


def move_call(call: _HasCallState, inp: CallInput) -> CallState:
    """Move ``call`` by ``inp``; its new state."""
    new = CALL_TRANSITIONS[call.state].get(inp)
    if new is None:
        raise IllegalTransition(f"call {call.id} in {call.state.value} cannot take {inp.value}")
    call.state = new
    return new
