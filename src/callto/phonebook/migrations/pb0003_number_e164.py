"""Stored numbers keep their E.164 form next to the text that was typed.

Screens show every number in one format chosen by the dial plan; that format is computed from the
E.164 form, so it is stored (``pb_numbers.e164``, NULL for extensions and numbers no country places).
Existing rows are filled in by the same parser the server uses, in the dial plan's country.

Revision ID: pb0003
Revises: pb0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "pb0003"
down_revision: str | Sequence[str] | None = "pb0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2000


def upgrade() -> None:
    from callto.dialer.numbers import number_forms

    op.add_column("pb_numbers", sa.Column("e164", sa.String(16), nullable=True))
    bind = op.get_bind()
    country = "IT"
    settings = sa.table("settings", sa.column("key", sa.String), sa.column("value", sa.JSON))
    inspector = sa.inspect(bind)
    if inspector.has_table("settings"):
        plan = bind.execute(sa.select(settings.c.value).where(settings.c.key == "dialplan")).scalar()
        if isinstance(plan, dict) and isinstance(plan.get("country"), str) and plan["country"]:
            country = plan["country"].upper()
    numbers = sa.table("pb_numbers", sa.column("id", sa.Integer), sa.column("number", sa.String),
                       sa.column("e164", sa.String))
    last = 0
    while True:
        rows = bind.execute(
            sa.select(numbers.c.id, numbers.c.number).where(numbers.c.id > last).order_by(numbers.c.id).limit(BATCH)
        ).all()
        if not rows:
            return
        updates = [
            {"row_id": row_id, "e164": e164}
            for row_id, number in rows
            if (e164 := number_forms(number, country).e164) is not None
        ]
        if updates:
            bind.execute(
                numbers.update().where(numbers.c.id == sa.bindparam("row_id")).values(e164=sa.bindparam("e164")),
                updates,
            )
        last = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("pb_numbers") as batch:
        batch.drop_column("e164")
