"""Phonebook base: contacts, numbers, search tokens, customer-card sources.

Revision ID: pb0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from callto.store.database import UtcDateTime

revision: str = "pb0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("phonebook",)
depends_on: str | Sequence[str] | None = "d0001"


def _c_text(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "pb_contacts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("company", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("sort_key", _c_text(200), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pb_contacts"),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="fk_pb_contacts_owner_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_pb_contacts_owner_id", "pb_contacts", ["owner_id"])
    op.create_index("ix_pb_contacts_sort_key_id", "pb_contacts", ["sort_key", "id"])
    op.create_table(
        "pb_numbers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(8), nullable=False),
        sa.Column("number", sa.String(40), nullable=False),
        sa.Column("key", sa.String(24), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pb_numbers"),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["pb_contacts.id"], name="fk_pb_numbers_contact_id_pb_contacts", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_pb_numbers_contact_id", "pb_numbers", ["contact_id"])
    op.create_index("ix_pb_numbers_key", "pb_numbers", ["key"])
    op.create_table(
        "pb_tokens",
        sa.Column("token", _c_text(64), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("sort_key", _c_text(200), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["pb_contacts.id"], name="fk_pb_tokens_contact_id_pb_contacts", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_pb_tokens_contact_id", "pb_tokens", ["contact_id"])
    op.create_index("ix_pb_tokens_token_sort_key_contact_id", "pb_tokens", ["token", "sort_key", "contact_id"])
    op.create_table(
        "pb_card_sources",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("timeout_ms", sa.Integer(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pb_card_sources"),
        sa.UniqueConstraint("name", name="uq_pb_card_sources_name"),
    )


def downgrade() -> None:
    op.drop_table("pb_card_sources")
    op.drop_index("ix_pb_tokens_token_sort_key_contact_id", table_name="pb_tokens")
    op.drop_index("ix_pb_tokens_contact_id", table_name="pb_tokens")
    op.drop_table("pb_tokens")
    op.drop_index("ix_pb_numbers_key", table_name="pb_numbers")
    op.drop_index("ix_pb_numbers_contact_id", table_name="pb_numbers")
    op.drop_table("pb_numbers")
    op.drop_index("ix_pb_contacts_sort_key_id", table_name="pb_contacts")
    op.drop_index("ix_pb_contacts_owner_id", table_name="pb_contacts")
    op.drop_table("pb_contacts")
