"""Routes of the phonebook (``/api/v1/phonebook``), customer cards (``/api/v1/customer-card``) and the
administrators' card sources (``/api/v1/admin/card-sources``)."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from callto.api.deps import Admin, CurrentUser, features
from callto.phonebook import transfer
from callto.phonebook.cards import CardService
from callto.phonebook.errors import ImportFailed
from callto.phonebook.schemas import (
    CardOut,
    CardSourceIn,
    CardSourceOut,
    CardSourcePatch,
    ContactIn,
    ContactOut,
    ContactPage,
    ContactPatch,
    ImportOut,
    SourceResult,
)
from callto.phonebook.service import PhonebookService

router = APIRouter(prefix="/api/v1")
_IMPORT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _phonebook(request: Request) -> PhonebookService:
    return features(request).phonebook


def _cards(request: Request) -> CardService:
    return features(request).cards


Phonebook = Annotated[PhonebookService, Depends(_phonebook)]
Cards = Annotated[CardService, Depends(_cards)]


@router.get("/phonebook", response_model=ContactPage, tags=["phonebook"])
def search(
    principal: CurrentUser,
    phonebook: Phonebook,
    q: Annotated[str, Query(max_length=1000, description="words or a number fragment")] = "",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=600)] = None,
) -> dict[str, Any]:
    """Contacts you can see (shared and your own) whose words or numbers start with what you typed."""
    items, nxt = phonebook.search(principal.user.id, q, limit, cursor)
    return {"items": [c.public() for c in items], "next_cursor": nxt}


@router.post("/phonebook", response_model=ContactOut, status_code=201, tags=["phonebook"])
def create(body: ContactIn, principal: CurrentUser, phonebook: Phonebook) -> dict[str, Any]:
    return phonebook.create(principal.user.id, principal.user.is_admin, body).public()


@router.post("/phonebook/import", response_model=ImportOut, tags=["phonebook"])
async def import_contacts(
    request: Request,
    principal: CurrentUser,
    phonebook: Phonebook,
    format: Annotated[Literal["auto", "csv", "vcard"], Query()] = "auto",
    encoding: Annotated[Literal["auto", "utf-8", "windows-1252"], Query()] = "auto",
    header: Annotated[Literal["auto", "yes", "no"], Query()] = "auto",
    mapping: Annotated[
        str | None,
        Query(max_length=4000, description='JSON object: column name or 0-based index -> field, e.g. {"Tel": "work"}'),
    ] = None,
    delimiter: Annotated[str | None, Query(min_length=1, max_length=1)] = None,
    shared: bool = False,
    import_id: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """Import a CSV or vCard file sent as the request body. Rows that cannot be read are reported with
    their line; the others are saved together (all of them, or none if saving fails)."""
    if shared and not principal.user.is_admin:
        raise ImportFailed("only administrators import shared contacts", status=403, error="shared-contact-read-only")
    if import_id is not None and not _IMPORT_ID.match(import_id):
        raise ImportFailed("import_id is letters, digits, '-' and '_' only", details={"field": "import_id"})
    import_id = import_id or secrets.token_hex(6)
    columns = _mapping(mapping)
    data = await request.body()
    if not data.strip():
        raise ImportFailed("the file is empty: send the CSV or vCard file as the request body")
    kind = transfer.detect_format(data) if format == "auto" else format
    if kind == "vcard":
        parsed = await run_in_threadpool(transfer.parse_vcard, data, encoding=encoding)
    else:
        parsed = await run_in_threadpool(
            transfer.parse_csv, data, encoding=encoding, header=header, mapping=columns, delimiter=delimiter
        )
    user_id = principal.user.id
    total, failed = parsed.total, len(parsed.problems)

    def report(stage: str, saved: int) -> None:
        phonebook.publish_progress(
            user_id,
            {"import_id": import_id, "stage": stage, "total": total, "processed": saved + failed,
             "imported": saved, "failed": failed},
        )

    report("parsed", 0)
    contacts = [c for _, c in parsed.contacts]
    ids = await run_in_threadpool(
        phonebook.bulk_create, None if shared else user_id, contacts, lambda n: report("saving", n)
    )
    report("done", len(ids))
    errors = [p.to_json() for p in parsed.problems[: transfer.MAX_REPORTED_ERRORS]]
    return {
        "import_id": import_id,
        "format": parsed.format,
        "encoding": parsed.encoding,
        "total": total,
        "imported": len(ids),
        "failed": failed,
        "errors": errors,
        "errors_truncated": failed > len(errors),
    }


def _mapping(raw: str | None) -> dict[str, str] | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ImportFailed("mapping must be a JSON object", details={"field": "mapping"}) from exc
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ImportFailed(
            'mapping must be a JSON object of strings, e.g. {"Telefono": "work"}', details={"field": "mapping"}
        )
    return value


@router.get("/phonebook/export", tags=["phonebook"], response_class=Response)
def export_contacts(
    principal: CurrentUser,
    phonebook: Phonebook,
    format: Annotated[Literal["csv", "vcard"], Query()] = "csv",
    version: Annotated[Literal["3.0", "4.0"], Query()] = "4.0",
    scope: Annotated[Literal["all", "shared", "private"], Query()] = "all",
) -> StreamingResponse:
    """Every contact you can see, as CSV (UTF-8) or vCard."""
    contacts = phonebook.iter_visible(principal.user.id, scope)
    if format == "vcard":
        chunks: Iterator[str] = transfer.export_vcard(contacts, version)
        media, suffix = "text/vcard; charset=utf-8", "vcf"
    else:
        chunks = transfer.export_csv(contacts)
        media, suffix = "text/csv; charset=utf-8", "csv"
    return StreamingResponse(
        iterate_in_threadpool(c.encode() for c in chunks),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="phonebook.{suffix}"'},
    )


@router.get("/phonebook/{contact_id}", response_model=ContactOut, tags=["phonebook"])
def get_contact(contact_id: int, principal: CurrentUser, phonebook: Phonebook) -> dict[str, Any]:
    return phonebook.get(principal.user.id, contact_id).public()


@router.patch("/phonebook/{contact_id}", response_model=ContactOut, tags=["phonebook"])
def patch_contact(contact_id: int, body: ContactPatch, principal: CurrentUser, phonebook: Phonebook) -> dict[str, Any]:
    return phonebook.update(principal.user.id, principal.user.is_admin, contact_id, body).public()


@router.delete("/phonebook/{contact_id}", status_code=204, tags=["phonebook"])
def delete_contact(contact_id: int, principal: CurrentUser, phonebook: Phonebook) -> Response:
    phonebook.delete(principal.user.id, principal.user.is_admin, contact_id)
    return Response(status_code=204)


# customer cards
@router.get("/customer-card", response_model=CardOut, tags=["customer-card"])
async def customer_card(
    principal: CurrentUser, cards: Cards, number: Annotated[str, Query(min_length=1, max_length=64)]
) -> dict[str, Any]:
    """What is known about a number: your matching contacts, your last calls with it, and every source."""
    return await cards.card(principal.user.id, number)


@router.get("/admin/card-sources", response_model=list[CardSourceOut], tags=["admin"])
def list_sources(_: Admin, cards: Cards) -> list[dict[str, Any]]:
    return [s.admin() for s in cards.list_sources()]


@router.post("/admin/card-sources", response_model=CardSourceOut, status_code=201, tags=["admin"])
def create_source(body: CardSourceIn, _: Admin, cards: Cards) -> dict[str, Any]:
    return cards.create_source(body).admin()


@router.get("/admin/card-sources/{source_id}", response_model=CardSourceOut, tags=["admin"])
def get_source(source_id: int, _: Admin, cards: Cards) -> dict[str, Any]:
    return cards.get_source(source_id).admin()


@router.patch("/admin/card-sources/{source_id}", response_model=CardSourceOut, tags=["admin"])
def patch_source(source_id: int, body: CardSourcePatch, _: Admin, cards: Cards) -> dict[str, Any]:
    return cards.update_source(source_id, body).admin()


@router.delete("/admin/card-sources/{source_id}", status_code=204, tags=["admin"])
def delete_source(source_id: int, _: Admin, cards: Cards) -> Response:
    cards.delete_source(source_id)
    return Response(status_code=204)


@router.post("/admin/card-sources/{source_id}/test", response_model=SourceResult, tags=["admin"])
async def test_source(
    source_id: int, _: Admin, cards: Cards, number: Annotated[str, Query(min_length=1, max_length=64)]
) -> dict[str, Any]:
    """Run one source for a number now, enabled or not, and show what it answers."""
    number = cards.check_number(number)
    source = await run_in_threadpool(cards.get_source, source_id)
    country = await run_in_threadpool(cards.phonebook.country)
    return await cards.run_source(source, number, country)
