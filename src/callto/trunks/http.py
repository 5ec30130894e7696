"""The trunk admin API (``/api/v1/admin/trunks``, admins only): create, list, read, change and delete
trunks through :class:`callto.trunks.service.TrunkService`, which the composition root puts in
``features(request).trunks``."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from callto.api.deps import Admin, features
from callto.trunks.schemas import TrunkIn, TrunkOut, TrunkPatch
from callto.trunks.service import TrunkService

router = APIRouter(prefix="/api/v1/admin/trunks", tags=["admin"])


async def _trunks(request: Request) -> TrunkService:
    # async: runs on the server's event loop, which is how the service learns it
    service = features(request).trunks
    service.loop = asyncio.get_running_loop()
    return service


Trunks = Annotated[TrunkService, Depends(_trunks)]


@router.post("", status_code=201, response_model=TrunkOut)
def create_trunk(body: TrunkIn, _: Admin, trunks: Trunks) -> dict[str, Any]:
    return trunks.create(body)


@router.get("", response_model=list[TrunkOut])
def list_trunks(_: Admin, trunks: Trunks) -> list[dict[str, Any]]:
    return trunks.list()


@router.get("/{trunk_id}", response_model=TrunkOut)
def get_trunk(trunk_id: int, _: Admin, trunks: Trunks) -> dict[str, Any]:
    return trunks.get(trunk_id)


@router.patch("/{trunk_id}", response_model=TrunkOut)
def patch_trunk(trunk_id: int, body: TrunkPatch, _: Admin, trunks: Trunks) -> dict[str, Any]:
    return trunks.update(trunk_id, body)


@router.delete("/{trunk_id}", status_code=204)
def delete_trunk(trunk_id: int, _: Admin, trunks: Trunks) -> Response:
    trunks.delete(trunk_id)
    return Response(status_code=204)
