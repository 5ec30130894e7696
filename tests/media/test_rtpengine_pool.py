"""Several external rtpengines (``host:port,host:port``): calls stick to one relay, and new calls go
around a relay that stopped answering. Real rtpengines on 127.0.0.1."""

from __future__ import annotations

import asyncio
from pathlib import Path

from callto.media import MediaSettings, MediaUnavailable, RtpenginePool, build_media_service
from callto.media.supervisor import free_udp_port
from support.rtp import RtpPeer
from support.rtpengine import running_rtpengine


def _pool(*addresses: str) -> RtpenginePool:
    service = build_media_service(
        MediaSettings(rtpengine=",".join(addresses), request_timeout=0.2, request_retries=0)
    )
    assert isinstance(service, RtpenginePool)
    return service


def test_calls_spread_over_the_pool_and_each_stays_on_its_relay(tmp_path: Path) -> None:
    with running_rtpengine(tmp_path / "a") as a, running_rtpengine(tmp_path / "b") as b:
        pool = _pool(a.address, b.address)

        async def main() -> dict[str, str]:
            await pool.start()
            peer = await RtpPeer().start()
            try:
                where = {}
                for n in range(12):
                    call_id = f"pool-{n}"
                    assert "m=audio" in await pool.offer(call_id, "a", peer.sdp(), {})
                    # A re-offer in the same call (hold, transfer) goes to the same relay.
                    first = pool._pinned[call_id].address
                    await pool.offer(call_id, "a", peer.sdp(), {})
                    assert pool._pinned[call_id].address == first
                    where[call_id] = first
                for call_id in where:
                    await pool.delete(call_id, "a")
                assert not pool._pinned
                return where
            finally:
                await peer.close()
                await pool.stop()

        where = asyncio.run(main())
        assert set(where.values()) == {a.address, b.address}
        # Every node computes the same choice: a second pool object agrees call by call.
        other = _pool(a.address, b.address)
        assert {c: other.order(c)[0].address for c in where} == where


def test_a_relay_that_does_not_answer_is_skipped_for_new_calls(tmp_path: Path) -> None:
    silent = f"127.0.0.1:{free_udp_port()}"  # nothing listens there
    with running_rtpengine(tmp_path / "a") as a:
        pool = _pool(silent, a.address)

        async def main() -> list[str]:
            await pool.start()
            peer = await RtpPeer().start()
            try:
                used = []
                for n in range(6):
                    call_id = f"skip-{n}"
                    assert "m=audio" in await pool.offer(call_id, "a", peer.sdp(), {})
                    used.append(pool._pinned[call_id].address)
                    await pool.delete(call_id, "a")
                assert "0 of 2" not in pool.reason and a.address in pool.reason
                return used
            finally:
                await peer.close()
                await pool.stop()

        assert set(asyncio.run(main())) == {a.address}


def test_a_pool_with_no_relay_answering_is_media_unavailable() -> None:
    pool = _pool(f"127.0.0.1:{free_udp_port()}", f"127.0.0.1:{free_udp_port()}")

    async def main() -> None:
        await pool.start()
        try:
            await pool.offer("none", "a", "v=0\r\n", {})
        finally:
            await pool.stop()

    try:
        asyncio.run(main())
    except MediaUnavailable as exc:
        assert exc.error == "media-unavailable"
        assert len(exc.details["rtpengines"]) == 2
    else:
        raise AssertionError("an offer with no relay answering must fail with media-unavailable")
