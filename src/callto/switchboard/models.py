"""Tables of the SIP switch: registered contacts (so registrations survive a restart), the answered calls
in progress (so a restart after a crash can end them and record them) and the nodes' heartbeats.

The trunks' table is :mod:`callto.trunks.models`; all of them are created by this package's migrations
(revision ids ``s0001``, ``s0002`` of the ``sip`` branch, kept from when they lived in ``callto.sip``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from callto.store.database import Base


class SipBinding(Base):
    __tablename__ = "sip_bindings"

    device_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    binding_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    # The whole binding as the registrar keeps it (contact exactly as registered, source, expiry...).
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    expires_at: Mapped[float] = mapped_column(Float)


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
