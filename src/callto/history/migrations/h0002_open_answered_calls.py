"""An answered call is in the history from its answer: ``ended_at`` stays NULL until the call ends.

The entry is written when the call is answered and updated, the same row, at its end (or by the node that
ends it after a crash). Calls that were never answered are still written once, at their end.

Revision ID: h0002
Revises: h0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from callto.store.database import UtcDateTime

revision: str = "h0002"
down_revision: str | Sequence[str] | None = "h0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("history_calls") as batch:
        batch.alter_column("ended_at", existing_type=UtcDateTime(), nullable=True)


def downgrade() -> None:
    # calls still up when downgrading end at their answer (nothing better is known)
    op.execute("UPDATE history_calls SET ended_at = answered_at WHERE ended_at IS NULL")
    with op.batch_alter_table("history_calls") as batch:
        batch.alter_column("ended_at", existing_type=UtcDateTime(), nullable=False)
