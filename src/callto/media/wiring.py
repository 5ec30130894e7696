"""Plugs media control into the server: rtpengine per the ``media_*`` settings, started with the server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from callto.media.supervisor import MediaSettings, build_media_service

if TYPE_CHECKING:
    from callto.app import Services


def install(app: FastAPI, services: Services) -> None:
    s = services.settings
    media = build_media_service(
        MediaSettings(
            rtpengine=s.media_rtpengine,
            interface=s.media_interface,
            port_min=s.media_port_min,
            port_max=s.media_port_max,
            run_dir=s.data_dir / "run" / "rtpengine",
        )
    )
    services.features["media"] = media
    services.components.append(media)
