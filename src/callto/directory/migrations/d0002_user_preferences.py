"""Each user's preferences, saved on the server so they follow the user to every browser and to Link.

``users.preferences`` holds only what the user chose (JSON, NULL until the first choice): the incoming-call
pop-up and ring tone switches and the language. Audio device ids are per machine and stay on the machine.

Revision ID: d0002
Revises: d0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d0002"
down_revision: str | Sequence[str] | None = "d0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("preferences", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("preferences")
