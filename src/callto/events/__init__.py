"""Events: the in-process bus (Redis pub/sub between nodes) and the per-session WebSocket stream.

Features publish typed events addressed to users; the hub delivers each to the WebSocket sessions of
exactly those users, and carries commands (``dial``, ``lan_relay``) to one chosen session with an ack.
"""

from callto.events.bus import Event, EventBus
from callto.events.hub import SessionHub

__all__ = ["Event", "EventBus", "SessionHub"]
