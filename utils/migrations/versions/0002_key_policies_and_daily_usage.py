"""Per-key policy (note, expiry, scopes, limits) on api_keys, and the daily usage rollup per key, provider
and UTC day. Existing keys keep working: every new column is nullable and means "no restriction".

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("note", sa.Text))
        batch.add_column(sa.Column("expires_at", sa.Float))
        batch.add_column(sa.Column("allowed_providers", sa.Text))  # JSON list, NULL = any
        batch.add_column(sa.Column("allowed_models", sa.Text))  # JSON list, NULL = any
        batch.add_column(sa.Column("limits", sa.Text))  # JSON object, NULL = none
    op.create_table(
        "key_usage_daily",
        sa.Column("day", sa.String(10), primary_key=True),  # YYYY-MM-DD, UTC
        sa.Column("key_hash", sa.String(64), primary_key=True),
        sa.Column("provider", sa.String(64), primary_key=True),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False),
        sa.Column("errors", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_key_usage_daily_key_day", "key_usage_daily", ["key_hash", "day"])


def downgrade() -> None:
    op.drop_index("ix_key_usage_daily_key_day", "key_usage_daily")
    op.drop_table("key_usage_daily")
    with op.batch_alter_table("api_keys") as batch:
        for column in ("limits", "allowed_models", "allowed_providers", "expires_at", "note"):
            batch.drop_column(column)
