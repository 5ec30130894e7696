"""SIP switch: answered calls in progress and node heartbeats, so a crashed node's calls get ended.

Revision ID: s0002
Revises: s0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "s0002"
down_revision: str | Sequence[str] | None = "s0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sip_active_calls",
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("call_id", name="pk_sip_active_calls"),
    )
    op.create_index("ix_sip_active_calls_node", "sip_active_calls", ["node"])
    op.create_table(
        "sip_nodes",
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("beat", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("node", name="pk_sip_nodes"),
    )


def downgrade() -> None:
    op.drop_table("sip_nodes")
    op.drop_index("ix_sip_active_calls_node", table_name="sip_active_calls")
    op.drop_table("sip_active_calls")
