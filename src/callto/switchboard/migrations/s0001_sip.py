"""SIP switch: persisted registrations and trunks.

Revision ID: s0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from callto.store.database import UtcDateTime

revision: str = "s0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("sip",)
depends_on: str | Sequence[str] | None = "d0001"


def upgrade() -> None:
    op.create_table(
        "sip_bindings",
        sa.Column("device_id", sa.String(32), nullable=False),
        sa.Column("binding_id", sa.String(512), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "binding_id", name="pk_sip_bindings"),
    )
    op.create_table(
        "sip_trunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("host", sa.String(253), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("transport", sa.String(8), nullable=False),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("password", sa.Text(), nullable=False),
        sa.Column("register", sa.Boolean(), nullable=False),
        sa.Column("caller_id", sa.String(32), nullable=False),
        sa.Column("dids", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sip_trunks"),
        sa.UniqueConstraint("name", name="uq_sip_trunks_name"),
    )


def downgrade() -> None:
    op.drop_table("sip_trunks")
    op.drop_table("sip_bindings")
