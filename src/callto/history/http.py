"""Routes of the call history: the user's own (``/api/v1/history``) and everyone's for administrators
(``/api/v1/admin/history``, with CSV export)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import iterate_in_threadpool

from callto.api.deps import Admin, CurrentUser, features
from callto.history.service import Direction, HistoryFilter, HistoryService

router = APIRouter(prefix="/api/v1")


def _history(request: Request) -> HistoryService:
    return features(request).history


History = Annotated[HistoryService, Depends(_history)]


class EntryOut(BaseModel):
    id: int
    call_id: str
    user_id: int
    direction: Direction
    number: str
    name: str | None
    device_id: int | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None  # null while the call is up (answered, not ended yet)
    duration: int
    disposition: str
    hangup_cause: str
    missed: bool
    seen: bool


class HistoryPage(BaseModel):
    items: list[EntryOut]
    next_cursor: str | None
    missed_unseen: int | None = None


class MissedOut(BaseModel):
    missed_unseen: int


Since = Annotated[datetime | None, Query(description="calls that started at or after this time (ISO 8601)")]
Until = Annotated[datetime | None, Query(description="calls that started before this time (ISO 8601)")]
Missed = Annotated[bool | None, Query(description="true: only missed calls; false: no missed calls")]
Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=200)]


@router.get("/history", response_model=HistoryPage, tags=["history"])
def my_history(
    principal: CurrentUser,
    history: History,
    since: Since = None,
    until: Until = None,
    direction: Direction | None = None,
    missed: Missed = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Your calls, newest first."""
    f = HistoryFilter(user_id=principal.user.id, since=since, until=until, direction=direction, missed=missed)
    items, nxt = history.entries(f, limit, cursor)
    return {"items": items, "next_cursor": nxt, "missed_unseen": history.missed_unseen(principal.user.id)}


@router.get("/history/missed", response_model=MissedOut, tags=["history"])
def missed_count(principal: CurrentUser, history: History) -> dict[str, int]:
    return {"missed_unseen": history.missed_unseen(principal.user.id)}


@router.post("/history/seen", response_model=MissedOut, tags=["history"])
def mark_seen(principal: CurrentUser, history: History) -> dict[str, int]:
    """You have looked at your missed calls: the count goes back to zero (``history.seen`` event)."""
    history.mark_seen(principal.user.id)
    return {"missed_unseen": 0}


@router.get("/admin/history", response_model=HistoryPage, tags=["admin"])
def all_history(
    _: Admin,
    history: History,
    user_id: int | None = None,
    since: Since = None,
    until: Until = None,
    direction: Direction | None = None,
    missed: Missed = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    f = HistoryFilter(user_id=user_id, since=since, until=until, direction=direction, missed=missed)
    items, nxt = history.entries(f, limit, cursor)
    return {"items": items, "next_cursor": nxt}


@router.get("/admin/history/export", tags=["admin"], response_class=StreamingResponse)
def export_history(
    _: Admin,
    history: History,
    user_id: int | None = None,
    since: Since = None,
    until: Until = None,
    direction: Direction | None = None,
    missed: Missed = None,
) -> StreamingResponse:
    """The calls matching the filters as CSV (UTF-8), newest first."""
    f = HistoryFilter(user_id=user_id, since=since, until=until, direction=direction, missed=missed)
    history.entries(f, 1)  # validates the filter before the response starts
    return StreamingResponse(
        iterate_in_threadpool(chunk.encode() for chunk in history.export_csv(f)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="history.csv"'},
    )
