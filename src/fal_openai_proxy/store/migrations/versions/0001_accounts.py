"""Accounts: virtual keys, the request log and per-day usage totals.

Revision ID: 0001
Revises:
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("key_hint", sa.String(8), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("models", sa.Text, nullable=True),
        sa.Column("max_budget", sa.Float, nullable=True),
        sa.Column("budget_period", sa.String(8), nullable=True),
        sa.Column("rpm", sa.Integer, nullable=True),
        sa.Column("expires_at", sa.BigInteger, nullable=True),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("deleted_at", sa.BigInteger, nullable=True),
        sa.Column("spend", sa.Float, nullable=False),
        sa.Column("period_spend", sa.Float, nullable=False),
        sa.Column("period_start", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_api_keys_hash", "api_keys", ["key_hash"], unique=True)
    op.create_table(
        "requests",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("route", sa.String(32), nullable=True),
        sa.Column("fal_app", sa.String(256), nullable=True),
        sa.Column("fal_request_id", sa.String(128), nullable=True),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error_type", sa.String(64), nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("ttfb_ms", sa.Float, nullable=True),
        sa.Column("stream", sa.Boolean, nullable=True),
        sa.Column("input_tokens", sa.BigInteger, nullable=True),
        sa.Column("output_tokens", sa.BigInteger, nullable=True),
        sa.Column("images", sa.Integer, nullable=True),
        sa.Column("audio_seconds_in", sa.Float, nullable=True),
        sa.Column("audio_seconds_out", sa.Float, nullable=True),
        sa.Column("video_seconds", sa.Float, nullable=True),
        sa.Column("cost", sa.Float, nullable=True),
        sa.Column("cost_source", sa.String(32), nullable=True),
        sa.Column("billable_units", sa.Float, nullable=True),
        sa.Column("prompt", sa.Text, nullable=True),
        sa.Column("answer", sa.Text, nullable=True),
    )
    op.create_index("ix_requests_created", "requests", ["created_at", "id"])
    op.create_index("ix_requests_key_created", "requests", ["key_id", "created_at", "id"])
    op.create_index("ix_requests_model_created", "requests", ["model", "created_at", "id"])
    op.create_table(
        "usage_daily",
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("errors", sa.BigInteger, nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("images", sa.BigInteger, nullable=False),
        sa.Column("audio_seconds", sa.Float, nullable=False),
        sa.Column("video_seconds", sa.Float, nullable=False),
        sa.Column("cost", sa.Float, nullable=False),
        sa.Column("unpriced", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("day", "key_id", "model", "endpoint", name="pk_usage_daily"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("usage_daily")
    op.drop_table("requests")
    op.drop_table("api_keys")
