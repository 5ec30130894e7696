"""Requests for a contact registered through an edge proxy follow its Path (RFC 3327): they go to the
first Path entry with the Path as preloaded Route set, whichever address the REGISTER came from."""

from __future__ import annotations

from calls_harness import DOMAIN, World

from callto.sip.endpoint import Source
from callto.sip.location import next_hop
from callto.sip.ports import Binding
from callto.sip.transaction import make_cancel


def _binding(port: int, *, path: tuple[str, ...] = (), transport: str = "udp", conn_id: int | None = None) -> Binding:
    return Binding(
        device_id="dev-bob",
        user_id="u-b",
        extension="202",
        aor=f"sip:202@{DOMAIN}",
        contact="sip:bob-c@192.0.2.7:5062",
        contact_header="",
        expires_at=2_000_000.0,
        call_id="reg-bob",
        cseq=1,
        source_transport=transport,
        source_host="127.0.0.1",
        source_port=port,
        registered_at=1_000_000.0,
        path=path,
        conn_id=conn_id,
    )


def test_a_contact_without_path_is_reached_where_it_registered_from() -> None:
    assert next_hop(_binding(41000)) == (Source("udp", ("127.0.0.1", 41000)), ())


def test_a_contact_with_path_is_reached_through_the_first_path_entry() -> None:
    path = ("<sip:127.0.0.1:45060;lr;received=sip:192.0.2.7:5062>", "<sip:edge2.example;lr>")
    dest, route = next_hop(_binding(41000, path=path))
    assert dest == Source("udp", ("127.0.0.1", 45060))
    assert route == path
    dest, _ = next_hop(_binding(41000, path=("<sip:[::1]:45070;transport=tcp;lr>",)))
    assert dest == Source("tcp", ("::1", 45070))


def test_an_open_flow_to_the_proxy_is_reused() -> None:
    path = ("<sip:127.0.0.1:45060;transport=tcp;lr>",)
    dest, route = next_hop(_binding(41000, path=path, transport="tcp", conn_id=7))
    assert dest == Source("tcp", ("127.0.0.1", 41000), 7) and route == path


def test_an_unparsable_path_falls_back_to_the_source_address() -> None:
    assert next_hop(_binding(41000, path=("<not a uri",))) == (Source("udp", ("127.0.0.1", 41000)), ())


def test_invite_and_cancel_to_a_binding_with_path_carry_its_route_to_the_edge() -> None:
    world = World()
    alice = world.phone("alice", "u-a", "201")
    edge = world.phone()  # the edge proxy: a listener that only receives here
    world.phone("bob", "u-b", "202", register=False)
    path = (f"<sip:127.0.0.1:{edge.port};lr;received=sip:192.0.2.7:5062>",)
    # The REGISTER came from another address (another edge, or a node-side NAT): the Path still wins.
    world.store.upsert(_binding(41999, path=path))
    world.registrar.load(world.now)

    caller_invite = alice.call("202")
    [invite] = edge.requests("INVITE")
    assert invite.uri == "sip:bob-c@192.0.2.7:5062"
    assert invite.headers.get_list("route") == list(path)
    alice.send(make_cancel(caller_invite))
    [cancel] = edge.requests("CANCEL")  # the branch is cancelled along the same route (RFC 3261 9.1)
    assert cancel.headers.get_list("route") == list(path)
