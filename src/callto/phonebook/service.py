"""The phonebook's behaviour: contacts (shared and private), search, look-up by number, bulk insert.

Plain arguments in, plain views out. A private contact is only ever seen by its owner; shared contacts are
seen by everyone and changed by administrators. Other packages (history, customer cards, the switch) use
:meth:`PhonebookService.lookup` / :meth:`PhonebookService.name_for`, never the tables.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Index, Select, Table, delete, func, insert, or_, select, text, tuple_, union_all
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased, selectinload
from sqlalchemy.sql.elements import ColumnElement

from callto.dialer.numbers import display_number
from callto.events.bus import Event, EventBus
from callto.phonebook.batch_names import NamesFor, contact_names
from callto.phonebook.errors import BadCursor, BadQuery, ContactNotFound, SharedContactReadOnly
from callto.phonebook.events import ImportProgress
from callto.phonebook.models import Contact, ContactNumber, ContactToken
from callto.phonebook.numbers import (
    DEFAULT_COUNTRY,
    fold,
    number_forms,
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
# A term whose prefix range holds at most this many distinct tokens is read token by token, in name order.
FEW_TOKENS = 8
# The first FEW_TOKENS + 1 distinct tokens in [low, high), one index seek each (a "loose index scan"), in one
# statement: a prefix range may hold thousands of entries of a single token.
DISTINCT_TOKENS = text(
    """
    WITH RECURSIVE found(word, n) AS (
        SELECT (SELECT token FROM pb_tokens WHERE token >= :low AND token < :high ORDER BY token LIMIT 1), 1
        UNION ALL
        SELECT (SELECT token FROM pb_tokens WHERE token > found.word AND token < :high ORDER BY token LIMIT 1),
               found.n + 1
        FROM found WHERE found.word IS NOT NULL AND found.n <= :most
    )
    SELECT word FROM found WHERE word IS NOT NULL
    """
)
# Imports of at least this many contacts into a phonebook no bigger than the import rebuild the token index.
REBUILD_MIN = 5000
TOKEN_INDEX = "ix_pb_tokens_token_sort_key_contact_id_owner_id"
COUNTRY_TTL = 30.0
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ContactView:
    id: int
    owner_id: int | None
    name: str
    company: str
    numbers: tuple[tuple[str, str], ...]
    email: str
    notes: str
    # Per number, in the same order: its E.164 form and how screens show it (the dial plan's format).
    forms: tuple[tuple[str | None, str], ...] = ()

    @property
    def shared(self) -> bool:
        return self.owner_id is None

    def public(self) -> dict[str, Any]:
        forms = self.forms or tuple((None, n) for _, n in self.numbers)
        return {
            "id": self.id,
            "name": self.name,
            "company": self.company,
            "numbers": [
                {"type": t, "number": n, "e164": e164, "display": display}
                for (t, n), (e164, display) in zip(self.numbers, forms, strict=True)
            ],
            "email": self.email,
            "notes": self.notes,
            "shared": self.shared,
        }


def _forms(number: str, e164: str | None, country: str) -> tuple[str | None, str]:
    return e164, display_number(e164, country) if e164 else number


def _view(contact: Contact, country: str) -> ContactView:
    return ContactView(
        id=contact.id,
        owner_id=contact.owner_id,
        name=contact.name,
        company=contact.company,
        numbers=tuple((n.type, n.number) for n in contact.numbers),
        email=contact.email,
        notes=contact.notes,
        forms=tuple(_forms(n.number, n.e164, country) for n in contact.numbers),
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


def _copy_rows(s: Session, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Append plain rows to one of the phonebook's own tables inside the session's transaction.

    An import writes about fifteen index rows per contact; going through SQLAlchemy's per-row parameter
    handling cost more than the database's own work, so this talks to the driver directly: COPY on
    PostgreSQL, one prepared INSERT run by ``executemany`` on SQLite. ``table`` and ``columns`` are
    constants of this module, never user input.
    """
    if not rows:
        return
    conn = s.connection()
    raw: Any = conn.connection.dbapi_connection
    names = ", ".join(f'"{c}"' for c in columns)
    if conn.dialect.name == "postgresql":
        with raw.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    cur = raw.cursor()
    try:
        cur.executemany(f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' for _ in columns)})", rows)
    finally:
        cur.close()


def _in_transaction(s: Session) -> bool:
    """Whether the driver's connection is inside a transaction (pysqlite starts one lazily)."""
    raw: Any = s.connection().connection.dbapi_connection
    return bool(getattr(raw, "in_transaction", False))


def _views(s: Session, ids: Sequence[int], country: str) -> list[ContactView]:
    """The contacts ``ids`` as views, in that order (plain rows: the ORM's identity map is not needed)."""
    if not ids:
        return []
    c = CONTACTS.c
    numbers: dict[int, list[tuple[str, str]]] = {}
    forms: dict[int, list[tuple[str | None, str]]] = {}
    n = NUMBERS.c
    for contact_id, kind, number, e164 in s.execute(
        select(n.contact_id, n.type, n.number, n.e164).where(n.contact_id.in_(ids)).order_by(n.contact_id, n.position)
    ):
        numbers.setdefault(contact_id, []).append((kind, number))
        forms.setdefault(contact_id, []).append(_forms(number, e164, country))
    found = {
        row.id: ContactView(
            id=row.id,
            owner_id=row.owner_id,
            name=row.name,
            company=row.company,
            numbers=tuple(numbers.get(row.id, ())),
            email=row.email,
            notes=row.notes,
            forms=tuple(forms.get(row.id, ())),
        )
        for row in s.execute(
            select(c.id, c.owner_id, c.name, c.company, c.email, c.notes).where(c.id.in_(ids))
        )
    }
    return [found[i] for i in ids if i in found]


def _visible(user_id: int) -> ColumnElement[bool]:
    return or_(Contact.owner_id.is_(None), Contact.owner_id == user_id)


def _visible_unindexed(user_id: int) -> ColumnElement[bool]:
    """:func:`_visible` written so that no index on owner_id can serve it.

    For walks in name order (which read the (sort_key, id, owner_id) index until a page is full) and
    number look-ups (driven by the number's key). With the owner index in reach, SQLite (which callto
    never ANALYZEs) fetches every visible contact through it and sorts them all: 300 ms at 100,000
    contacts instead of 1 ms. Owner ids are user ids, never 0.
    """
    return func.coalesce(Contact.owner_id, 0).in_((0, user_id))


class PhonebookService:
    def __init__(
        self, db: Database, bus: EventBus, country: Callable[[], str | None] | None = None
    ) -> None:
        self.db = db
        self.bus = bus
        self._country_source = country
        self._country: tuple[float, str] | None = None

    def batch_names(self) -> NamesFor:
        """A function naming many (user, number) pairs in one query, inside the caller's session."""
        return contact_names(self.country)

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
            return _view(self._load(s, user_id, contact_id), self.country())

    def get(self, user_id: int, contact_id: int) -> ContactView:
        with self.db.session() as s:
            return _view(self._load(s, user_id, contact_id), self.country())

    def update(self, user_id: int, is_admin: bool, contact_id: int, patch: ContactPatch) -> ContactView:
        changes = patch.model_dump(exclude_unset=True)
        country = self.country()
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
                for pos, n in enumerate(patch.numbers):
                    forms = number_forms(n.number, country)
                    contact.numbers.append(
                        ContactNumber(position=pos, type=n.type.value, number=n.number, e164=forms.e164, key=forms.key)
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
            return _view(contact, country)

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
            rebuild = self._rebuild_search_index(s, len(contacts))
            dropped = False
            for start in range(0, len(contacts), BATCH):
                ids.extend(self._insert(s, owner_id, contacts[start : start + BATCH]))
                if rebuild is not None and not dropped and _in_transaction(s):
                    # Only once an INSERT has run: pysqlite opens the transaction there, and DDL outside
                    # one commits at once (a failed import would leave the index gone).
                    rebuild.drop(s.connection())
                    dropped = True
                if progress is not None:
                    progress(len(ids))
            if dropped and rebuild is not None:
                rebuild.create(s.connection())
        if not self.db.is_sqlite and len(contacts) >= REBUILD_MIN:
            self._vacuum()
        return ids

    def _vacuum(self) -> None:
        """VACUUM (ANALYZE) the phonebook's tables after a big PostgreSQL import.

        Searches read only indexes, but PostgreSQL answers from an index alone only for pages its
        visibility map marks all-visible, which takes a VACUUM; until autovacuum comes round (a minute or
        more after an import) every search would also read the table. It also refreshes the statistics
        the planner picks the search plan with. It is only an optimization: failing is logged, not raised.
        """
        try:
            with self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM (ANALYZE) pb_contacts, pb_numbers, pb_tokens"))
        except SQLAlchemyError as exc:
            log.warning("phonebook: VACUUM after the import failed, searches stay slower until autovacuum: %s", exc)

    def _rebuild_search_index(self, s: Session, adding: int) -> Index | None:
        """The token index to drop before a big SQLite import and build again after it, else None.

        Rows arrive in contact order, so the token index takes them at random places: at 100,000
        contacts (1.4 million tokens) keeping it up to date row by row cost several times more than
        building it once from sorted data. Only on SQLite, whose DDL is transactional and whose
        readers keep seeing the old index (WAL) until the import commits, and only when the import at
        least doubles the phonebook (a rebuild costs in proportion to all rows, not just the new ones).
        PostgreSQL keeps the index: dropping it would lock every search out for the whole import.
        """
        if not self.db.is_sqlite or adding < REBUILD_MIN:
            return None
        existing = int(s.scalar(select(func.count()).select_from(CONTACTS)) or 0)
        if adding < existing:
            return None
        return next(i for i in TOKENS.indexes if i.name == TOKEN_INDEX)

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
        ids = self._insert_contacts(s, rows)
        country = self.country()
        numbers: list[tuple[int, int, str, str, str | None, str]] = []
        tokens: list[tuple[str, int, int | None, str]] = []
        for contact_id, item, row in zip(ids, items, rows, strict=True):
            for pos, n in enumerate(item.numbers):
                forms = number_forms(n.number, country)
                numbers.append((contact_id, pos, n.type.value, n.number, forms.e164, forms.key))
            key = str(row["sort_key"])
            for token in self._tokens(item.name, item.company, item.email, [n.number for n in item.numbers]):
                tokens.append((token, contact_id, owner_id, key))
        _copy_rows(s, "pb_numbers", ("contact_id", "position", "type", "number", "e164", "key"), numbers)
        _copy_rows(s, "pb_tokens", ("token", "contact_id", "owner_id", "sort_key"), tokens)
        return ids

    @staticmethod
    def _insert_contacts(s: Session, rows: list[dict[str, Any]]) -> list[int]:
        """Insert contact rows, returning their ids in the same order."""
        if s.get_bind().dialect.name != "postgresql":
            # Core inserts (not ORM units of work): a 100,000-row import spends its time in the database.
            stmt = insert(CONTACTS).returning(CONTACTS.c.id, sort_by_parameter_order=True)
            return list(s.scalars(stmt, rows).all())
        # psycopg parses a multi-row INSERT's text in Python (more time than the server spends on it):
        # take the ids from the table's sequence and COPY the rows with them.
        ids = list(
            s.scalars(
                text("SELECT nextval(pg_get_serial_sequence('pb_contacts', 'id')) FROM generate_series(1, :n)"),
                {"n": len(rows)},
            ).all()
        )
        columns = ("owner_id", "name", "company", "email", "notes", "sort_key", "created_at", "updated_at")
        _copy_rows(
            s,
            "pb_contacts",
            ("id", *columns),
            [(contact_id, *(row[c] for c in columns)) for contact_id, row in zip(ids, rows, strict=True)],
        )
        return [int(i) for i in ids]

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
                q = select(Contact.sort_key, Contact.id).where(_visible_unindexed(user_id))
                if after is not None:
                    q = q.where(tuple_(Contact.sort_key, Contact.id) > tuple_(*after))
                page = [(k, i) for k, i in s.execute(q.order_by(Contact.sort_key, Contact.id).limit(limit + 1))]
            views = _views(s, [contact_id for _, contact_id in page[:limit]], self.country())
        nxt = encode_cursor(*page[limit - 1]) if len(page) > limit else None
        return views, nxt

    @staticmethod
    def _page_by_tokens(
        s: Session, terms: list[str], user_id: int, after: tuple[str, int] | None, size: int
    ) -> list[tuple[str, int]]:
        """One page of (sort_key, contact_id) matching every term.

        The term matching the fewest tokens drives (counted up to a cap on the token index). Then, in
        order of preference:

        - its prefix range holds a few distinct tokens ("mario", "rossi", a whole number): each token's
          index entries are already in name order, so each is read only until a page of matches is found
          (the other terms probed per entry) and the pieces merged;
        - a few thousand entries ("390511", many numbers): they are read and sorted;
        - more ("m", "39"): contacts are walked in name order and each is probed, which fills a page
          after a few rows when matches are that dense.

        Every read is served by an index holding all the columns it needs (pb0002).
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

        def capped_count(term: str) -> Any:
            return select(func.count()).select_from(matching(term).limit(SORT_LIMIT + 1).subquery()).scalar_subquery()

        # Every statement is a round trip, which on a busy machine costs more than the work: the counts
        # (needed to pick the rarest term of several) go in one statement, and a single term is not
        # counted at all unless its range holds many distinct tokens.
        counts: dict[str, int] = {}
        if len(terms) > 1:
            row = s.execute(select(*(capped_count(t) for t in terms))).one()
            counts = {t: int(c or 0) for t, c in zip(terms, row, strict=True)}
            if min(counts.values()) == 0:
                return []
        driver = min(terms, key=lambda t: counts.get(t, 0))
        words = [
            str(w)
            for w in s.scalars(
                DISTINCT_TOKENS, {"low": driver, "high": prefix_upper_bound(driver), "most": FEW_TOKENS}
            )
        ]
        if len(words) <= FEW_TOKENS:
            # One token's index entries are in name order already: read each token's entries until a page
            # of matches is found, then merge. A contact in the first `size` results overall is among the
            # first `size` matches of every token of the range it has, so the merge is exact.
            pieces = []
            for word in words:
                q = select(token.sort_key, token.contact_id).where(
                    token.token == word,
                    or_(token.owner_id.is_(None), token.owner_id == user_id),
                    *(probe(t, token.contact_id) for t in terms if t != driver),
                )
                if after is not None:
                    q = q.where(tuple_(token.sort_key, token.contact_id) > tuple_(*after))
                pieces.append(q.order_by(token.sort_key, token.contact_id).limit(size).subquery().select())
            if not pieces:
                return []
            found = {(k, i) for k, i in s.execute(union_all(*pieces) if len(pieces) > 1 else pieces[0])}
            return sorted(found)[:size]
        fewest = counts[driver] if driver in counts else int(s.scalar(select(capped_count(driver))) or 0)
        if fewest > SORT_LIMIT:
            walk = select(Contact.sort_key, Contact.id).where(
                _visible_unindexed(user_id), *(probe(t, Contact.id) for t in terms)
            )
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
            with_number = select(ContactNumber.contact_id).where(ContactNumber.key == key)
            stmt = (
                select(Contact.id)
                # Visibility as an expression no owner index serves: the number's key is the selective part.
                .where(Contact.id.in_(with_number), _visible_unindexed(user_id))
                # The user's own private card is the better name for a number than the shared one.
                .order_by(Contact.owner_id.is_(None), Contact.sort_key, Contact.id)
                .limit(limit)
            )
            return _views(s, list(s.scalars(stmt).all()), self.country())

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
        country = self.country()
        after: tuple[str, int] | None = None
        while True:
            stmt = select(Contact).options(selectinload(Contact.numbers)).where(where)
            if after is not None:
                stmt = stmt.where(tuple_(Contact.sort_key, Contact.id) > tuple_(*after))
            stmt = stmt.order_by(Contact.sort_key, Contact.id).limit(BATCH)
            with self.db.session() as s:
                batch = list(s.scalars(stmt).all())
                views = [_view(c, country) for c in batch]
            yield from views
            if len(batch) < BATCH:
                return
            after = (batch[-1].sort_key, batch[-1].id)

    def count_visible(self, user_id: int) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(Contact).where(_visible(user_id))) or 0)

    def publish_progress(self, user_id: int, data: dict[str, Any]) -> None:
        self.bus.publish(Event.of(ImportProgress(data), frozenset({user_id})))
