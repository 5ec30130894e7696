"""Integrations base: API tokens, service-call audit, webhooks, deliveries.

Revision ID: i0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from callto.store.database import UtcDateTime

revision: str = "i0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("integrations",)
depends_on: str | Sequence[str] | None = "d0001"


def upgrade() -> None:
    op.create_table(
        "integration_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("last_used_at", UtcDateTime(), nullable=True),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_integration_tokens"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_integration_tokens_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("secret_hash", name="uq_integration_tokens_secret_hash"),
    )
    op.create_index("ix_integration_tokens_user_id", "integration_tokens", ["user_id"])
    op.create_table(
        "integration_service_calls",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("token_name", sa.String(100), nullable=False),
        sa.Column("placed_by_user_id", sa.Integer(), nullable=True),
        sa.Column("on_behalf_of_user_id", sa.Integer(), nullable=False),
        sa.Column("to", sa.String(256), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_integration_service_calls"),
    )
    op.create_index("ix_integration_service_calls_call_id", "integration_service_calls", ["call_id"])
    op.create_index(
        "ix_integration_service_calls_on_behalf_of_user_id", "integration_service_calls", ["on_behalf_of_user_id"]
    )
    op.create_table(
        "integration_webhooks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_integration_webhooks"),
    )
    op.create_table(
        "integration_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("webhook_id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_integration_deliveries"),
        sa.ForeignKeyConstraint(
            ["webhook_id"], ["integration_webhooks.id"],
            name="fk_integration_deliveries_webhook_id_integration_webhooks", ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_integration_deliveries_webhook_id_id", "integration_deliveries", ["webhook_id", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_integration_deliveries_webhook_id_id", table_name="integration_deliveries")
    op.drop_table("integration_deliveries")
    op.drop_table("integration_webhooks")
    op.drop_index("ix_integration_service_calls_on_behalf_of_user_id", table_name="integration_service_calls")
    op.drop_index("ix_integration_service_calls_call_id", table_name="integration_service_calls")
    op.drop_table("integration_service_calls")
    op.drop_index("ix_integration_tokens_user_id", table_name="integration_tokens")
    op.drop_table("integration_tokens")
