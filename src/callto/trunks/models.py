"""The trunks' table (created by the switchboard's migration ``s0001`` with the SIP tables)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from callto.store.database import Base, UtcDateTime, utcnow


class Trunk(Base):
    __tablename__ = "sip_trunks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    host: Mapped[str] = mapped_column(String(253))
    port: Mapped[int] = mapped_column(Integer, default=5060)
    transport: Mapped[str] = mapped_column(String(8), default="udp")
    username: Mapped[str] = mapped_column(String(128), default="")
    password: Mapped[str] = mapped_column(Text, default="")
    register: Mapped[bool] = mapped_column(Boolean, default=False)
    caller_id: Mapped[str] = mapped_column(String(32), default="")
    dids: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
