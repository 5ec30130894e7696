"""Tables of the SIP switch: registered contacts (so registrations survive a restart), trunks, and the
answered calls in progress (so a restart after a crash can end them and record them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from callto.store.database import Base, UtcDateTime, utcnow


class SipBinding(Base):
    __tablename__ = "sip_bindings"

    device_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    binding_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    # The whole binding as the registrar keeps it (contact exactly as registered, source, expiry...).
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    expires_at: Mapped[float] = mapped_column(Float)


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


class SipActiveCall(Base):
    __tablename__ = "sip_active_calls"

    call_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    node: Mapped[str] = mapped_column(String(128), index=True)
    # The whole ActiveCall (dialogs of the legs, what the history entry needs), as JSON.
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class SipNode(Base):
    """A running node's heartbeat: ``beat`` goes up every second while it lives."""

    __tablename__ = "sip_nodes"

    node: Mapped[str] = mapped_column(String(128), primary_key=True)
    beat: Mapped[int] = mapped_column(Integer, default=0)
