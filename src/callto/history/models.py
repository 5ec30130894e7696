"""Tables owned by the call history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from callto.store.database import Base, UtcDateTime, utcnow


class CallEntry(Base):
    __tablename__ = "history_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(16))
    other_number: Mapped[str] = mapped_column(String(64))
    other_key: Mapped[str] = mapped_column(String(24))
    other_name: Mapped[str | None] = mapped_column(String(200))
    # No foreign key: the history outlives a deleted device.
    device_id: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # NULL while an answered call is up: its entry is written at the answer and completed at its end.
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    duration: Mapped[int] = mapped_column(Integer)
    disposition: Mapped[str] = mapped_column(String(16))
    hangup_cause: Mapped[str] = mapped_column(String(128), default="")
    missed: Mapped[bool] = mapped_column(Boolean, default=False)
    seen: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("user_id", "call_id", name="uq_history_calls_user_id_call_id"),
        Index("ix_history_calls_user_id_started_at_id", "user_id", "started_at", "id"),
        Index("ix_history_calls_user_id_other_key", "user_id", "other_key"),
        Index("ix_history_calls_user_id_missed_seen", "user_id", "missed", "seen"),
        Index("ix_history_calls_started_at_id", "started_at", "id"),
    )
