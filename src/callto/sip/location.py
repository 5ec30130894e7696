"""Where a request for a registered contact goes: its next hop and its preloaded Route set.

A contact registered straight to the switch is reached at the address its REGISTER came from (so NAT and
connection reuse work). A contact registered through an edge proxy carries the proxy's ``Path`` (RFC 3327):
requests for it go to the first Path entry (the proxy nearest to us) with the whole Path as the Route set,
so the proxy that knows the phone delivers them, whichever node of a cluster sends them. Over a
connection-oriented transport the open connection to that proxy is reused while it lives.
"""

from __future__ import annotations

from callto.sip.endpoint import Source
from callto.sip.errors import SipMessageError
from callto.sip.grammar import SipURI, parse_name_addr
from callto.sip.ports import Binding

RELIABLE = ("tcp", "tls", "ws", "wss")


def next_hop(binding: Binding) -> tuple[Source, tuple[str, ...]]:
    """``(destination, route set)`` for a request to ``binding``'s contact."""
    source = Source(binding.source_transport, (binding.source_host, binding.source_port), binding.conn_id)
    if not binding.path:
        return source, ()
    if binding.source_transport in RELIABLE and binding.conn_id is not None:
        return source, binding.path  # the proxy's own connection still leads to it
    try:
        uri = parse_name_addr(binding.path[0], "Path").uri
    except SipMessageError:
        return source, ()
    if not isinstance(uri, SipURI):
        return source, ()
    transport = uri.transport
    default_port = 5061 if transport == "tls" else 5060
    return Source(transport, (uri.host.strip("[]"), uri.port or default_port)), binding.path
