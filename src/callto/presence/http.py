"""Routes of the company directory with presence (``/api/v1/directory``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from callto.api.deps import CurrentUser, features
from callto.directory.schemas import DeviceKind
from callto.presence.service import Presence, PresenceService

router = APIRouter(prefix="/api/v1")


def _presence(request: Request) -> PresenceService:
    return features(request).presence


PresenceDep = Annotated[PresenceService, Depends(_presence)]


class DirectoryDevice(BaseModel):
    kind: DeviceKind
    online: bool


class DirectoryEntry(BaseModel):
    id: int
    username: str
    display_name: str
    extension: str | None
    devices: list[DirectoryDevice]
    presence: Presence


@router.get("/directory", response_model=list[DirectoryEntry], tags=["directory"])
def company_directory(_: CurrentUser, presence: PresenceDep) -> list[dict[str, Any]]:
    """Everyone in the company: extension, devices (kind and online only) and presence.
    Changes arrive as ``presence.changed`` events on the event stream."""
    return presence.listing()
