"""Tables owned by the directory: users, devices and installation-wide settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from callto.store.database import Base, UtcDateTime, utcnow


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    extension: Mapped[str | None] = mapped_column(String(16), unique=True)
    mobile: Mapped[str | None] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16), default="user")
    outbound: Mapped[str] = mapped_column(String(16), default="national")
    password_hash: Mapped[str] = mapped_column(String(256))
    # No foreign key on purpose: users and devices would reference each other; the service keeps it valid.
    main_device_id: Mapped[int | None] = mapped_column(Integer)
    dnd: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped on password change/reset: every token issued before stops working.
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    # What the user chose in Settings (pop-up, ring tone, language), shared by the web and Link; NULL
    # until the first choice (see callto.directory.schemas.Preferences for the keys and defaults).
    preferences: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    devices: Mapped[list[Device]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True, order_by="Device.id"
    )


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(128), default="")
    sip_username: Mapped[str] = mapped_column(String(64), unique=True)
    # Kept in clear: digest auth needs it, and the device itself must be given it (provisioning, web phone).
    sip_password: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    user: Mapped[User] = relationship(back_populates="devices")


class Setting(Base):
    """Installation-wide settings shared by every node (JWT key, dial plan, ...)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
