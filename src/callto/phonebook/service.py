"""The phonebook's behaviour: contacts (shared and private), search, look-up by number, bulk insert.

Plain arguments in, plain views out. A private contact is only ever seen by its owner; shared contacts are
seen by everyone and changed by administrators. Other packages (history, customer cards, the switch) use
:meth:`PhonebookService.lookup` / :meth:`PhonebookService.name_for`, never the tables.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Select, Table, delete, func, insert, or_, select, tuple_
from sqlalchemy.orm import Session, aliased, selectinload
from sqlalchemy.sql.elements import ColumnElement

from callto.events.bus import Event, EventBus
from callto.phonebook.errors import BadCursor, BadQuery, ContactNotFound, SharedContactReadOnly
from callto.phonebook.models import Contact, ContactNumber, ContactToken
from callto.phonebook.numbers import (
    DEFAULT_COUNTRY,
    fold,
    number_key,
    number_tokens,
    prefix_upper_bound,
    query_terms,
    text_tokens,
)
from callto.phonebook.schemas import ContactIn, ContactPatch
from callto.store.database import Database, utcnow

CONTACTS = cast(Table, Contact.__table__)
NUMBERS = cast(Table, ContactNumber.__table__)
TOKENS = cast(Table, ContactToken.__table__)
MAX_QUERY = 200
MAX_TERMS = 8
MAX_LIMIT = 200
BATCH = 1000
# Up to this many matching tokens a search sorts them; beyond, it walks contacts in name order.
SORT_LIMIT = 5000
COUNTRY_TTL = 30.0


@dataclass(frozen=True)
class ContactView:
    id: int
    owner_id: int | None
    name: str
    company: str
    numbers: tuple[tuple[str, str], ...]
    email: str
    notes: str

    @property
    def shared(self) -> bool:
        return self.owner_id is None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "company": self.company,
            "numbers": [{"type": t, "number": n} for t, n in self.numbers],
            "email": self.email,
            "notes": self.notes,
            "shared": self.shared,
        }


def _view(contact: Contact) -> ContactView:
    return ContactView(
        id=contact.id,
        owner_id=contact.owner_id,
        name=contact.name,
        company=contact.company,
        numbers=tuple((n.type, n.number) for n in contact.numbers),
        email=contact.email,
        notes=contact.notes,
    )


def sort_key(name: str, company: str) -> str:
    return " ".join(p for p in (fold(name).strip(), fold(company).strip()) if p)[:200]


def encode_cursor(key: str, contact_id: int) -> str:
    raw = json.dumps([key, contact_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key, contact_id = json.loads(raw)
        if not isinstance(key, str) or not isinstance(contact_id, int):
            raise ValueError("bad cursor shape")
        return key, contact_id
    except (ValueError, TypeError, binascii.Error) as exc:
        raise BadCursor("that cursor was not given by this server; start the listing again") from exc


def _visible(user_id: int) -> ColumnElement[bool]:
    return or_(Contact.owner_id.is_(None), Contact.owner_id == user_id)


class PhonebookService:
    def __init__(
        self, db: Database, bus: EventBus, country: Callable[[], str | None] | None = None
    ) -> None:
        self.db = db
        self.bus = bus
        self._country_source = country
        self._country: tuple[float, str] | None = None

    def country(self) -> str:
        """The dial plan's country (numbers without a country code are read in it); cached briefly."""
        now = time.monotonic()
        if self._country is not None and now - self._country[0] < COUNTRY_TTL:
            return self._country[1]
        value = (self._country_source() if self._country_source else None) or DEFAULT_COUNTRY
        self._country = (now, value)
        return value

    # single contacts
    def create(self, user_id: int, is_admin: bool, data: ContactIn) -> ContactView:
        if data.shared and not is_admin:
            raise SharedContactReadOnly("only administrators add shared contacts; add it as a private one")
        owner = None if data.shared else user_id
        with self.db.session() as s:
            [contact_id] = self._insert(s, owner, [data])
            return _view(self._load(s, user_id, contact_id))

    def get(self, user_id: int, contact_id: int) -> ContactView:
        with self.db.session() as s:
            return _view(self._load(s, user_id, contact_id))

    def update(self, user_id: int, is_admin: bool, contact_id: int, patch: ContactPatch) -> ContactView:
        changes = patch.model_dump(exclude_unset=True)
        with self.db.session() as s:
            contact = self._load(s, user_id, contact_id)
            self._check_writable(contact, is_admin)
            for name in ("name", "company", "email", "notes"):
                if changes.get(name) is not None:
                    setattr(contact, name, changes[name])
            if not contact.name and not contact.company:
                raise BadQuery("a contact needs a name or a company", details={"field": "name"})
            if patch.numbers is not None:
                contact.numbers.clear()
                s.flush()
                country = self.country()
                for pos, n in enumerate(patch.numbers):
                    contact.numbers.append(
                        ContactNumber(
                            position=pos, type=n.type.value, number=n.number, key=number_key(n.number, country)
                        )
                    )
            contact.sort_key = sort_key(contact.name, contact.company)
            s.execute(delete(ContactToken).where(ContactToken.contact_id == contact.id))
            tokens = self._tokens(contact.name, contact.company, contact.email, [n.number for n in contact.numbers])
            if tokens:
                s.execute(
                    insert(ContactToken),
                    [
                        {"token": t, "contact_id": contact.id, "owner_id": contact.owner_id, "sort_key": key}
                        for t in tokens
                        for key in (contact.sort_key,)
                    ],
                )
            s.flush()
            return _view(contact)

    def delete(self, user_id: int, is_admin: bool, contact_id: int) -> None:
        with self.db.session() as s:
            contact = self._load(s, user_id, contact_id)
            self._check_writable(contact, is_admin)
            s.delete(contact)

    @staticmethod
    def _check_writable(contact: Contact, is_admin: bool) -> None:
        if contact.owner_id is None and not is_admin:
            raise SharedContactReadOnly(
                "shared contacts are kept by administrators", details={"contact_id": contact.id}
            )

    @staticmethod
    def _load(s: Session, user_id: int, contact_id: int) -> Contact:
        contact = s.get(Contact, contact_id, options=[selectinload(Contact.numbers)])
        # Someone else's private contact is answered exactly like a missing one: no existence leak.
        if contact is None or (contact.owner_id is not None and contact.owner_id != user_id):
            raise ContactNotFound(
                f"there is no contact with id {contact_id}", details={"contact_id": contact_id}
            )
        return contact

    # many contacts
    def bulk_create(
        self,
        owner_id: int | None,
        contacts: Sequence[ContactIn],
        progress: Callable[[int], None] | None = None,
    ) -> list[int]:
        """Insert many contacts in one transaction (all or none); ``progress(done)`` after each batch."""
        ids: list[int] = []
        with self.db.session() as s:
            for start in range(0, len(contacts), BATCH):
                ids.extend(self._insert(s, owner_id, contacts[start : start + BATCH]))
                if progress is not None:
                    progress(len(ids))
        return ids

    def _tokens(self, name: str, company: str, email: str, numbers: Sequence[str]) -> set[str]:
        tokens = text_tokens(name, company, email)
        country = self.country()
        for number in numbers:
            tokens |= number_tokens(number, country)
        return tokens

    def _insert(self, s: Session, owner_id: int | None, items: Sequence[ContactIn]) -> list[int]:
        if not items:
            return []
        now = utcnow()
        rows = [
            {
                "owner_id": owner_id,
                "name": item.name or item.company,
                "company": item.company,
                "email": item.email,
                "notes": item.notes,
                "sort_key": sort_key(item.name or item.company, item.company),
                "created_at": now,
                "updated_at": now,
            }
            for item in items
        ]
        contacts = CONTACTS
        # Core inserts (not ORM units of work): a 100,000-row import spends its time in the database.
        ids = list(
            s.scalars(insert(contacts).returning(contacts.c.id, sort_by_parameter_order=True), rows).all()
        )
        country = self.country()
        numbers: list[dict[str, Any]] = []
        tokens: list[dict[str, Any]] = []
        for contact_id, item, row in zip(ids, items, rows, strict=True):
            for pos, n in enumerate(item.numbers):
                numbers.append(
                    {
                        "contact_id": contact_id,
                        "position": pos,
                        "type": n.type.value,
                        "number": n.number,
                        "key": number_key(n.number, country),
                    }
                )
            for token in self._tokens(item.name, item.company, item.email, [n.number for n in item.numbers]):
                tokens.append(
                    {"token": token, "contact_id": contact_id, "owner_id": owner_id, "sort_key": row["sort_key"]}
                )
        if numbers:
            s.execute(insert(NUMBERS), numbers)
        if tokens:
            s.execute(insert(TOKENS), tokens)
        return ids

    # reading
    def search(
        self, user_id: int, query: str = "", limit: int = 50, cursor: str | None = None
    ) -> tuple[list[ContactView], str | None]:
        """Contacts visible to ``user_id`` whose words/numbers start with every term of ``query``."""
        if len(query) > MAX_QUERY:
            raise BadQuery(
                f"the search text is longer than {MAX_QUERY} characters", details={"length": len(query)}
            )
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in query):
            raise BadQuery("the search text contains control characters")
        if not 1 <= limit <= MAX_LIMIT:
            raise BadQuery(f"limit must be between 1 and {MAX_LIMIT}", details={"limit": limit})
        terms = query_terms(query, self.country()) if query.strip() else []
        if len(terms) > MAX_TERMS:
            raise BadQuery(f"use at most {MAX_TERMS} words to search", details={"words": len(terms)})
        if query.strip() and not terms:
            # Only punctuation ("%", "*"): nothing to match, and certainly not a wildcard.
            return [], None
        after = decode_cursor(cursor) if cursor else None
        with self.db.session() as s:
            if terms:
                page = self._page_by_tokens(s, terms, user_id, after, limit + 1)
            else:
                q = select(Contact.sort_key, Contact.id).where(_visible(user_id))
                if after is not None:
                    q = q.where(tuple_(Contact.sort_key, Contact.id) > tuple_(*after))
                page = [(k, i) for k, i in s.execute(q.order_by(Contact.sort_key, Contact.id).limit(limit + 1))]
            ids = [contact_id for _, contact_id in page[:limit]]
            loaded = {
                c.id: c
                for c in s.scalars(select(Contact).options(selectinload(Contact.numbers)).where(Contact.id.in_(ids)))
            }
            views = [_view(loaded[i]) for i in ids if i in loaded]
        nxt = encode_cursor(*page[limit - 1]) if len(page) > limit else None
        return views, nxt

    @staticmethod
    def _page_by_tokens(
        s: Session, terms: list[str], user_id: int, after: tuple[str, int] | None, size: int
    ) -> list[tuple[str, int]]:
        """One page of (sort_key, contact_id) matching every term.

        The term matching the fewest tokens drives (counted up to a cap on the token index). A rare
        driver ("rossi", a number) gives a few thousand index entries to sort; a dense one ("m", "39")
        would mean sorting a large part of the index, so instead contacts are walked in name order and
        each is probed, which fills a page after a few rows when matches are that dense.
        """

        def probe(term: str, contact_id: Any) -> ColumnElement[bool]:
            # An alias: probing pb_tokens from a query over pb_tokens must correlate to the outer row.
            other = aliased(ContactToken)
            return (
                select(other.token)
                .where(
                    other.contact_id == contact_id,
                    other.token >= term,
                    other.token < prefix_upper_bound(term),
                )
                .exists()
            )

        token = ContactToken

        def matching(term: str) -> Select[str, int]:
            return select(token.sort_key, token.contact_id).where(
                token.token >= term,
                token.token < prefix_upper_bound(term),
                or_(token.owner_id.is_(None), token.owner_id == user_id),
            )

        counts = {}
        for term in terms:
            capped = matching(term).limit(SORT_LIMIT + 1).subquery()
            counts[term] = int(s.scalar(select(func.count()).select_from(capped)) or 0)
            if counts[term] == 0:
                return []
        driver = min(terms, key=lambda t: counts[t])
        if counts[driver] > SORT_LIMIT:
            walk = select(Contact.sort_key, Contact.id).where(_visible(user_id), *(probe(t, Contact.id) for t in terms))
            if after is not None:
                walk = walk.where(tuple_(Contact.sort_key, Contact.id) > tuple_(*after))
            walk = walk.order_by(Contact.sort_key, Contact.id).limit(size)
            return [(k, i) for k, i in s.execute(walk)]
        q = matching(driver).distinct().where(*(probe(t, token.contact_id) for t in terms if t != driver))
        if after is not None:
            q = q.where(tuple_(token.sort_key, token.contact_id) > tuple_(*after))
        q = q.order_by(token.sort_key, token.contact_id).limit(size)
        return [(k, i) for k, i in s.execute(q)]

    def lookup(self, user_id: int, number: str, limit: int = 5) -> list[ContactView]:
        """Contacts visible to ``user_id`` with a number equal to ``number`` in any format."""
        key = number_key(number, self.country())
        if not key:
            return []
        with self.db.session() as s:
            ids = select(ContactNumber.contact_id).where(ContactNumber.key == key)
            stmt = (
                select(Contact)
                .options(selectinload(Contact.numbers))
                .where(Contact.id.in_(ids), _visible(user_id))
                # The user's own private card is the better name for a number than the shared one.
                .order_by(Contact.owner_id.is_(None), Contact.sort_key, Contact.id)
                .limit(limit)
            )
            return [_view(c) for c in s.scalars(stmt).all()]

    def name_for(self, user_id: int, number: str) -> str | None:
        found = self.lookup(user_id, number, limit=1)
        return found[0].name if found else None

    def iter_visible(self, user_id: int, scope: str = "all") -> Iterator[ContactView]:
        """Every contact ``user_id`` sees (``scope``: all, shared, private), in name order, in batches."""
        if scope == "shared":
            where: ColumnElement[bool] = Contact.owner_id.is_(None)
        elif scope == "private":
            where = Contact.owner_id == user_id
        else:
            where = _visible(user_id)
        after: tuple[str, int] | None = None
        while True:
            stmt = select(Contact).options(selectinload(Contact.numbers)).where(where)
            if after is not None:
                stmt = stmt.where(tuple_(Contact.sort_key, Contact.id) > tuple_(*after))
            stmt = stmt.order_by(Contact.sort_key, Contact.id).limit(BATCH)
            with self.db.session() as s:
                batch = list(s.scalars(stmt).all())
                views = [_view(c) for c in batch]
            yield from views
            if len(batch) < BATCH:
                return
            after = (batch[-1].sort_key, batch[-1].id)

    def count_visible(self, user_id: int) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(Contact).where(_visible(user_id))) or 0)

    def publish_progress(self, user_id: int, data: dict[str, Any]) -> None:
        self.bus.publish(Event("phonebook.import.progress", data, frozenset({user_id})))
