"""A configuration-reload NOTIFY (check-sync) to a phone follows the phone's Path, as an INVITE does: it goes
to the edge that carried the REGISTER, with the Path as its Route set, not to the REGISTER's source address
(which, with several edges, a load balancer or a binding taken in from another node, is not the way back)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
from calls_harness import running_switch

from callto.sip.message import Request, make_response, parse_message
from callto.sip.ports import Binding

pytestmark = pytest.mark.timeout(30)


def test_check_sync_goes_along_the_path_with_it_as_the_route_set() -> None:
    edge = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    edge.bind(("127.0.0.1", 0))
    edge.settimeout(5)
    edge_port = edge.getsockname()[1]
    path = f"<sip:127.0.0.1:{edge_port};lr;received=sip:127.0.0.1:5999>"
    with running_switch() as sw:
        binding = Binding(
            device_id="7", user_id="u7", extension="207", aor="sip:207@pbx.callto.test",
            contact="sip:207@127.0.0.1:5999", contact_header="<sip:207@127.0.0.1:5999>",
            expires_at=time.time() + 600, call_id="reg-7", cseq=1, source_transport="udp",
            source_host="127.0.0.1", source_port=9,  # not the way back: nothing listens there
            registered_at=time.time(), path=(path,),
        )
        sw.call(lambda: sw.switch.merge_bindings([binding]))  # as taken in from the node that accepted it
        result: list[Any] = []
        asking = threading.Thread(
            target=lambda: result.append(sw.loop.run(sw.switch.check_sync(7, "u7", "check-sync")))
        )
        asking.start()
        try:
            data, node = edge.recvfrom(65535)
            request = parse_message(data)
            assert isinstance(request, Request) and request.method == "NOTIFY"
            assert request.uri == "sip:207@127.0.0.1:5999", "the phone's contact stays the Request-URI"
            assert request.headers.get_all("route") == [path]
            edge.sendto(make_response(request, 200).to_bytes(), node)
        finally:
            asking.join(10)
            edge.close()
    assert result and result[0].sent and result[0].outcome == "sent", result
