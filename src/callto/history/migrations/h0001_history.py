"""Call history base.

Revision ID: h0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from callto.store.database import UtcDateTime

revision: str = "h0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("history",)
depends_on: str | Sequence[str] | None = "d0001"


def upgrade() -> None:
    op.create_table(
        "history_calls",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("other_number", sa.String(64), nullable=False),
        sa.Column("other_key", sa.String(24), nullable=False),
        sa.Column("other_name", sa.String(200), nullable=True),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("answered_at", UtcDateTime(), nullable=True),
        sa.Column("ended_at", UtcDateTime(), nullable=False),
        sa.Column("duration", sa.Integer(), nullable=False),
        sa.Column("disposition", sa.String(16), nullable=False),
        sa.Column("hangup_cause", sa.String(128), nullable=False),
        sa.Column("missed", sa.Boolean(), nullable=False),
        sa.Column("seen", sa.Boolean(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_history_calls"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_history_calls_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("user_id", "call_id", name="uq_history_calls_user_id_call_id"),
    )
    op.create_index("ix_history_calls_user_id_started_at_id", "history_calls", ["user_id", "started_at", "id"])
    op.create_index("ix_history_calls_user_id_other_key", "history_calls", ["user_id", "other_key"])
    op.create_index("ix_history_calls_user_id_missed_seen", "history_calls", ["user_id", "missed", "seen"])
    op.create_index("ix_history_calls_started_at_id", "history_calls", ["started_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_history_calls_started_at_id", table_name="history_calls")
    op.drop_index("ix_history_calls_user_id_missed_seen", table_name="history_calls")
    op.drop_index("ix_history_calls_user_id_other_key", table_name="history_calls")
    op.drop_index("ix_history_calls_user_id_started_at_id", table_name="history_calls")
    op.drop_table("history_calls")
