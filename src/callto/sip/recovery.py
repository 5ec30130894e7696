"""Ending calls that a previous run of this node (or a dead node) had answered, and telling dead nodes.

When a call is answered the B2BUA keeps an :class:`~callto.sip.ports.ActiveCall` outside the process: the
dialog of every confirmed leg and what its history entry needs. A node that starts after a crash (or a
survivor of a dead node) turns each one into a BYE per leg, sent along the leg's recorded route set, and
a call record ended ``server-restart``. Pure functions: the switch sends the requests and records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from callto.sip.dialog import Dialog
from callto.sip.endpoint import Source
from callto.sip.message import Request
from callto.sip.ports import ActiveCall, ActiveLeg

if TYPE_CHECKING:
    from callto.sip.b2bua import Call

# The recovered BYE's CSeq is this far above the last one recorded at answer time, so in-dialog requests
# sent after the snapshot (re-INVITEs for hold, INFO for DTMF) cannot make it look old (RFC 3261 12.2.2).
CSEQ_HEADROOM = 10_000


def snapshot(call: Call, node: str) -> ActiveCall | None:
    """The answered call as a survivor needs it, or None when no leg has a confirmed dialog."""
    legs = []
    for leg in call.legs():
        dialog = leg.dialog
        # by value: importing LegState here would make a circle (the B2BUA imports this module)
        if dialog is None or leg.state.value != "confirmed":
            continue
        host, port = dialog.dest.addr[0], dialog.dest.addr[1]
        legs.append(
            ActiveLeg(
                call_id=dialog.call_id,
                local_tag=dialog.local_tag,
                remote_tag=dialog.remote_tag,
                local_uri=dialog.local_uri,
                remote_uri=dialog.remote_uri,
                remote_target=dialog.remote_target,
                local_contact=dialog.local_contact,
                route_set=tuple(dialog.route_set),
                local_seq=dialog.local_seq,
                transport=dialog.dest.transport,
                host=str(host),
                port=int(port),
                device_id=leg.device_id,
            )
        )
    if not legs or call.answered_at is None:
        return None
    return ActiveCall(
        call_id=call.id,
        node=node,
        direction=call.kind,
        from_number=call.from_number,
        to_number=call.to_number,
        started_at=call.started_at,
        answered_at=call.answered_at,
        caller_user_id=call.caller_user_id,
        caller_device_id=call.caller_device_id,
        callee_user_id=call.callee_user_id,
        answered_device_id=call.winner.device_id if call.winner else None,
        trunk_id=call.trunk_id,
        click_id=call.click_id,
        devices_rung=tuple(call.devices_rung),
        legs=tuple(legs),
    )


def bye_for(leg: ActiveLeg) -> tuple[Request, Source]:
    """The BYE that ends ``leg``, and where to send it (a connection of the old process is gone: a stream
    transport gets a new one)."""
    dest = Source(leg.transport, (leg.host, leg.port))
    dialog = Dialog(
        call_id=leg.call_id,
        local_tag=leg.local_tag,
        remote_tag=leg.remote_tag,
        local_uri=leg.local_uri,
        remote_uri=leg.remote_uri,
        remote_target=leg.remote_target,
        dest=dest,
        local_contact=leg.local_contact,
        route_set=list(leg.route_set),
        local_seq=leg.local_seq + CSEQ_HEADROOM,
        confirmed=True,
    )
    request = dialog.request("BYE")
    request.headers.add("Reason", 'SIP;cause=500;text="server restarted"')
    return request, dest


class DeadNodes:
    """Which other nodes stopped beating: a node whose counter has not moved for ``after`` seconds of this
    node's own clock is dead. Comparing counters, not timestamps, keeps clock skew between hosts out of
    it. Feed :meth:`observe` the counters and ``now``; it returns the nodes that just died."""

    def __init__(self, after: float = 4.0) -> None:
        self.after = after
        self._seen: dict[str, tuple[int, float]] = {}  # node -> (counter, when it last moved)

    def observe(self, beats: dict[str, int], now: float) -> list[tuple[str, int]]:
        dead = []
        for node, beat in beats.items():
            last = self._seen.get(node)
            if last is None or last[0] != beat:
                self._seen[node] = (beat, now)
            elif now - last[1] >= self.after:
                dead.append((node, beat))
        for node in set(self._seen) - set(beats):
            del self._seen[node]
        for node, _beat in dead:
            del self._seen[node]
        return dead
