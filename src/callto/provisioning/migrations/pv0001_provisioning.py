"""Provisioning base: desk phones by MAC and their fetch log.

Revision ID: pv0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from callto.store.database import UtcDateTime

revision: str = "pv0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("provisioning",)
depends_on: str | Sequence[str] | None = "d0001"


def upgrade() -> None:
    op.create_table(
        "prov_phones",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("mac", sa.String(12), nullable=False),
        sa.Column("vendor", sa.String(32), nullable=False),
        sa.Column("model", sa.String(32), nullable=False),
        sa.Column("label", sa.String(128), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("bootstrap_token", sa.String(64), nullable=True),
        sa.Column("bootstrap_expires_at", UtcDateTime(), nullable=True),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("strategies", sa.JSON(), nullable=True),
        sa.Column("http_port", sa.Integer(), nullable=True),
        sa.Column("http_scheme", sa.String(8), nullable=True),
        sa.Column("last_fetch_at", UtcDateTime(), nullable=True),
        sa.Column("last_fetch_ip", sa.String(64), nullable=True),
        sa.Column("last_user_agent", sa.String(256), nullable=True),
        sa.Column("last_file", sa.String(128), nullable=True),
        sa.Column("firmware", sa.String(64), nullable=True),
        sa.Column("last_reload_at", UtcDateTime(), nullable=True),
        sa.Column("last_reload_outcome", sa.String(32), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_prov_phones"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_prov_phones_user_id_users", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_prov_phones_device_id_devices", ondelete="SET NULL"
        ),
        sa.UniqueConstraint("mac", name="uq_prov_phones_mac"),
        sa.UniqueConstraint("device_id", name="uq_prov_phones_device_id"),
        sa.UniqueConstraint("token", name="uq_prov_phones_token"),
        sa.UniqueConstraint("bootstrap_token", name="uq_prov_phones_bootstrap_token"),
    )
    op.create_index("ix_prov_phones_user_id", "prov_phones", ["user_id"])
    op.create_table(
        "prov_fetches",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("phone_id", sa.Integer(), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("user_agent", sa.String(256), nullable=False),
        sa.Column("file", sa.String(128), nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_prov_fetches"),
        sa.ForeignKeyConstraint(
            ["phone_id"], ["prov_phones.id"], name="fk_prov_fetches_phone_id_prov_phones", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_prov_fetches_phone_id", "prov_fetches", ["phone_id"])


def downgrade() -> None:
    op.drop_index("ix_prov_fetches_phone_id", table_name="prov_fetches")
    op.drop_table("prov_fetches")
    op.drop_index("ix_prov_phones_user_id", table_name="prov_phones")
    op.drop_table("prov_phones")
