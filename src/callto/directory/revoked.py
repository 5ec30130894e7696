"""Logged-out session tokens, kept in the database until they would have expired anyway.

A token is a signed JWT that stays valid until its ``exp``; a logout revokes it by its id (``jti``, not a
secret: it cannot be turned back into the token). The node that handles the logout writes the id here and
tells the others at once over the bus; the table is what a node reads when it starts (or when it may have
missed the bus, see :class:`callto.events.revocation.RevocationSync`), so a restart or a node that joins
later refuses the token too. Rows whose token expired are pruned: they can no longer be used anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Integer, String, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from callto.store.database import Base, Database, UtcDateTime, utcnow


class RevokedToken(Base):
    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    revoked_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)


@dataclass(frozen=True)
class Revoked:
    jti: str
    user_id: int
    expires_at: float  # unix seconds
    revoked_at: datetime


class RevokedTokens:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, jti: str, user_id: int, expires_at: float) -> None:
        """Record a logout (again: harmless) and prune the rows of tokens that expired."""
        now = utcnow()
        values = {"jti": jti, "user_id": user_id, "expires_at": datetime.fromtimestamp(expires_at, UTC),
                  "revoked_at": now}
        insert = pg_insert if self.db.engine.dialect.name == "postgresql" else sqlite_insert
        with self.db.session() as s:
            s.execute(insert(RevokedToken).values(**values).on_conflict_do_nothing(index_elements=["jti"]))
            s.execute(delete(RevokedToken).where(RevokedToken.expires_at <= now))

    def live(self, since: datetime | None = None) -> list[Revoked]:
        """The revocations of tokens not yet expired (revoked at or after ``since``, when given)."""
        query = select(RevokedToken).where(RevokedToken.expires_at > utcnow())
        if since is not None:
            query = query.where(RevokedToken.revoked_at >= since)
        with self.db.session() as s:
            return [Revoked(r.jti, r.user_id, r.expires_at.timestamp(), r.revoked_at) for r in s.scalars(query)]

    @staticmethod
    def overlap(last: datetime, seconds: float) -> datetime:
        """Where the next read of :meth:`live` starts: a little before the last one, so a row committed
        late (its ``revoked_at`` taken before another node's read) is not missed."""
        return last - timedelta(seconds=seconds)
