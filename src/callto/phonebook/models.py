"""Tables owned by the phonebook: contacts, their numbers, the search token index and card sources."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from callto.store.database import Base, UtcDateTime, utcnow

# Prefix search is a range scan (token >= 'ros' AND token < 'rot'); that only equals "starts with" in
# byte order, which PostgreSQL gives with the "C" collation and SQLite always does.
SearchText = String(64).with_variant(String(64, collation="C"), "postgresql")
SortText = String(200).with_variant(String(200, collation="C"), "postgresql")


class Contact(Base):
    __tablename__ = "pb_contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # None: shared with the whole company (admins edit); a user id: that user's private contact.
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    company: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    sort_key: Mapped[str] = mapped_column(SortText)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    numbers: Mapped[list[ContactNumber]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="ContactNumber.position"
    )

    # Listing and walking contacts in name order reads this index alone, owner included (visibility).
    __table_args__ = (Index("ix_pb_contacts_sort_key_id_owner_id", "sort_key", "id", "owner_id"),)


class ContactNumber(Base):
    __tablename__ = "pb_numbers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("pb_contacts.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    type: Mapped[str] = mapped_column(String(8))
    # As typed or imported; e164 is its normalized form (None: an extension or a number no country
    # places), key what look-ups compare (e164 without '+', else the bare digits).
    number: Mapped[str] = mapped_column(String(40))
    e164: Mapped[str | None] = mapped_column(String(16), default=None)
    key: Mapped[str] = mapped_column(String(24), index=True)


class ContactToken(Base):
    """One searchable word or digit string of a contact; owner and sort key copied so search needs no join."""

    __tablename__ = "pb_tokens"

    token: Mapped[str] = mapped_column(SearchText)
    contact_id: Mapped[int] = mapped_column(ForeignKey("pb_contacts.id", ondelete="CASCADE"))
    owner_id: Mapped[int | None] = mapped_column(Integer)
    # The contact's sort key, copied so a page of results comes from this table's index alone.
    sort_key: Mapped[str] = mapped_column(SortText)

    # No primary key constraint in the database: its index would duplicate the search index below and
    # slow bulk imports; the service never writes a (token, contact) pair twice.
    __mapper_args__ = {"primary_key": [token, contact_id]}
    # Both indexes cover every column a search reads, so a search never visits the table itself:
    # - (token, sort_key, contact_id, owner_id): the contacts having a word/number starting with a term,
    #   visible to the user, already in name order for one token (a prefix range spans a few);
    # - (contact_id, token): "does this contact also have a token starting with the next term" in one
    #   index seek; it also serves the cascade on delete (pb0002).
    __table_args__ = (
        Index("ix_pb_tokens_token_sort_key_contact_id_owner_id", "token", "sort_key", "contact_id", "owner_id"),
        Index("ix_pb_tokens_contact_id_token", "contact_id", "token"),
    )


class CardSource(Base):
    """A customer-card source configured by an administrator (SQL database or HTTP JSON service)."""

    __tablename__ = "pb_card_sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    timeout_ms: Mapped[int] = mapped_column(Integer, default=2000)
    # Holds credentials (database URL, HTTP headers): only ever returned to administrators.
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
