"""How a call leg carries media, and the rtpengine ng flags that bridge two legs that carry it differently.

Owns :class:`MediaProfile` (plain RTP or WebRTC), the classification of an SDP into one, and the pure
builders of the ng flags for an ``offer`` / ``answer`` going from one profile to the other (the verified
set is listed in ``docs/media.md``). No I/O: the asyncio ng client is ``callto.media.rtpengine``, which
re-exports these; the B2BUA decides with them when a call needs the relay and what to ask it.
"""

from __future__ import annotations

import enum
from typing import Any

Flags = dict[str, Any]
"""ng dictionary entries beside ``command``/``call-id``/tags/``sdp`` (e.g. ``{"ICE": "remove"}``)."""


class MediaProfile(enum.Enum):
    """How one call leg carries media."""

    PLAIN = "plain"  # RTP/AVP, no ICE, no DTLS: desk phones, trunks, baresip
    WEBRTC = "webrtc"  # UDP/TLS/RTP/SAVPF with ICE and DTLS-SRTP: browsers, aiortc


def sdp_profile(sdp: str) -> MediaProfile:
    """Classify an SDP by its first audio m-line's transport (DTLS/SRTP with ICE means WebRTC)."""
    for line in sdp.splitlines():
        if line.startswith("m=audio"):
            parts = line.split()
            proto = parts[2].upper() if len(parts) > 2 else ""
            if "TLS" in proto or "SAVP" in proto:
                return MediaProfile.WEBRTC
            return MediaProfile.PLAIN
    return MediaProfile.PLAIN


def needs_relay(a: MediaProfile, b: MediaProfile) -> bool:
    """Same-profile legs pass SDP through; only mixed legs need rtpengine."""
    return a is not b


_REPLACE = ["origin", "session-connection"]


def offer_flags(source: MediaProfile, target: MediaProfile, *, transcode: tuple[str, ...] = ()) -> Flags:
    """Flags for an ``offer`` whose SDP comes from a ``source`` leg and goes to a ``target`` leg.

    WebRTC -> plain: strip ICE, plain RTP/AVP, demultiplex RTCP (else Chromium later rejects the answer
    with "RTCP-MUX is not enabled when it is required") and offer PCMU so a plain phone always finds a
    codec even when the browser only offered Opus.
    Plain -> WebRTC: add ICE, DTLS-SRTP over UDP/TLS/RTP/SAVPF, offer rtcp-mux. ``transcode`` adds
    codecs rtpengine will transcode to (e.g. ``("opus",)``); browsers also speak PCMU, so none needed.
    """
    flags: Flags = {"replace": list(_REPLACE)}
    if source is MediaProfile.WEBRTC and target is MediaProfile.PLAIN:
        flags.update(
            {
                "ICE": "remove",
                "transport-protocol": "RTP/AVP",
                "rtcp-mux": ["demux"],
                "codec": {"transcode": list(transcode or ("PCMU",))},
            }
        )
    elif source is MediaProfile.PLAIN and target is MediaProfile.WEBRTC:
        flags.update(
            {
                "ICE": "force",
                "transport-protocol": "UDP/TLS/RTP/SAVPF",
                "rtcp-mux": ["offer"],
                "flags": ["generate-mid"],
            }
        )
        if transcode:
            flags["codec"] = {"transcode": list(transcode)}
    elif transcode:
        flags["codec"] = {"transcode": list(transcode)}
    return flags


def answer_flags(source: MediaProfile, target: MediaProfile) -> Flags:
    """Flags for an ``answer`` whose SDP comes from ``source`` and goes back to ``target`` (the offerer).

    Plain -> WebRTC: force ICE and UDP/TLS/RTP/SAVPF; rtpengine takes ``setup:active`` so the browser is
    the DTLS server. WebRTC -> plain: strip ICE and go back to RTP/AVP with RTCP demultiplexed.
    """
    flags: Flags = {"replace": list(_REPLACE)}
    if source is MediaProfile.PLAIN and target is MediaProfile.WEBRTC:
        flags.update({"ICE": "force", "transport-protocol": "UDP/TLS/RTP/SAVPF"})
    elif source is MediaProfile.WEBRTC and target is MediaProfile.PLAIN:
        flags.update({"ICE": "remove", "transport-protocol": "RTP/AVP", "rtcp-mux": ["demux"]})
    return flags
