"""Tables owned by provisioning: the desk phones callto knows by MAC, and the log of their fetches."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from callto.store.database import Base, UtcDateTime, utcnow


class Phone(Base):
    __tablename__ = "prov_phones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mac: Mapped[str] = mapped_column(String(12), unique=True)
    vendor: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(128), default="")
    # SET NULL on the database side: a user or device removed through the directory leaves the phone
    # unassigned instead of pointing at nothing (the directory does not know this table).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    device_id: Mapped[int | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL"), unique=True
    )
    token: Mapped[str] = mapped_column(String(64), unique=True)
    bootstrap_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    bootstrap_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Phone-level template variables (time_zone, language, line_keys, sip_transport): the last layer
    # of defaults -> vendor -> model -> phone.
    variables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    strategies: Mapped[list[str] | None] = mapped_column(JSON)
    http_port: Mapped[int | None] = mapped_column(Integer)
    http_scheme: Mapped[str | None] = mapped_column(String(8))
    last_fetch_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_fetch_ip: Mapped[str | None] = mapped_column(String(64))
    last_user_agent: Mapped[str | None] = mapped_column(String(256))
    last_file: Mapped[str | None] = mapped_column(String(128))
    firmware: Mapped[str | None] = mapped_column(String(64))
    last_reload_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_reload_outcome: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Fetch(Base):
    """One file a phone fetched (or was refused); the newest few per phone are kept."""

    __tablename__ = "prov_fetches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phone_id: Mapped[int] = mapped_column(ForeignKey("prov_phones.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    ip: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(256))
    file: Mapped[str] = mapped_column(String(128))
    via: Mapped[str] = mapped_column(String(16))
    status: Mapped[int] = mapped_column(Integer)
