"""Media control: rtpengine over the ng protocol, so WebRTC legs and plain RTP legs can talk.

``bencode`` is the wire format, ``rtpengine`` the asyncio ng client and the flag sets for each
direction, ``supervisor`` runs Debian's rtpengine and builds the :class:`MediaService` the switch uses.
"""

from callto.media.errors import MediaError, MediaUnavailable
from callto.media.rtpengine import MediaProfile, NgClient, answer_flags, needs_relay, offer_flags, sdp_profile
from callto.media.supervisor import (
    MediaService,
    MediaSettings,
    NoMedia,
    RtpengineMedia,
    RtpenginePool,
    RtpengineSupervisor,
    build_media_service,
)

__all__ = [
    "MediaError",
    "MediaProfile",
    "MediaService",
    "MediaSettings",
    "MediaUnavailable",
    "NgClient",
    "NoMedia",
    "RtpengineMedia",
    "RtpenginePool",
    "RtpengineSupervisor",
    "answer_flags",
    "build_media_service",
    "needs_relay",
    "offer_flags",
    "sdp_profile",
]
