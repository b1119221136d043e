"""The videos table (GET /v1/videos, DELETE /v1/videos/{id}, the webhook watcher).

Revision ID: 0001_videos
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_videos"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "videos",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("lookup", sa.String(64), nullable=False, unique=True),
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("owner", sa.String(32), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("app", sa.String(256), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("prompt", sa.Text, nullable=True),
        sa.Column("seconds", sa.String(16), nullable=False),
        sa.Column("size", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Integer, nullable=False),
        sa.Column("completed_at", sa.BigInteger, nullable=True),
        sa.Column("expires_at", sa.BigInteger, nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("remixed_from", sa.Text, nullable=True),
        sa.Column("notify_state", sa.Integer, nullable=False),
        sa.Column("notify_at", sa.BigInteger, nullable=True),
        sa.Column("deleted_at", sa.BigInteger, nullable=True),
    )
    op.create_index("videos_owner_seq", "videos", ["owner", "seq"])
    op.create_index("videos_status", "videos", ["status"])
    op.create_index("videos_deleted_at", "videos", ["deleted_at"])


def downgrade() -> None:
    op.drop_table("videos")
