"""Builds media control: rtpengine per the ``media_*`` settings (a component: started with the server)."""

from __future__ import annotations

from callto.config import Settings
from callto.media.supervisor import MediaSettings, NoMedia, RtpengineMedia, RtpenginePool, build_media_service

Media = RtpengineMedia | RtpenginePool | NoMedia


def build(settings: Settings) -> Media:
    return build_media_service(
        MediaSettings(
            rtpengine=settings.media_rtpengine,
            interface=settings.media_interface,
            port_min=settings.media_port_min,
            port_max=settings.media_port_max,
            run_dir=settings.data_dir / "run" / "rtpengine",
        )
    )
