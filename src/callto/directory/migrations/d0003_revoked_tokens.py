"""Logged-out tokens (``revoked_tokens``): a logout outlives a restart and reaches nodes that start later.

Revision ID: d0003
Revises: d0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from callto.store.database import UtcDateTime

revision: str = "d0003"
down_revision: str | Sequence[str] | None = "d0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "revoked_tokens",
        sa.Column("jti", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("jti", name="pk_revoked_tokens"),
    )
    op.create_index("ix_revoked_tokens_expires_at", "revoked_tokens", ["expires_at"])
    op.create_index("ix_revoked_tokens_revoked_at", "revoked_tokens", ["revoked_at"])


def downgrade() -> None:
    op.drop_index("ix_revoked_tokens_revoked_at", "revoked_tokens")
    op.drop_index("ix_revoked_tokens_expires_at", "revoked_tokens")
    op.drop_table("revoked_tokens")
