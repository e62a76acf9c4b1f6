"""api_keys, exactly as the gateway created it before it had migrations (CREATE TABLE IF NOT EXISTS from
utils/keys.py). Databases made then are stamped at this revision rather than built by it.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No server defaults: the code has always written every column (its defaults are Python-side).
    op.create_table(
        "api_keys",
        sa.Column("key_hash", sa.String(64), primary_key=True),
        sa.Column("masked", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_used", sa.Float),
        sa.Column("request_count", sa.BigInteger, nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
