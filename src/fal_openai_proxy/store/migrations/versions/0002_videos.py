"""Videos: the table behind GET /v1/videos, DELETE /v1/videos/{id} and the video watcher.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "videos",
        sa.Column("seq", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("lookup", sa.String(64), nullable=False),
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
    op.create_index("ix_videos_lookup", "videos", ["lookup"], unique=True)
    op.create_index("ix_videos_owner_seq", "videos", ["owner", "seq"])
    op.create_index("ix_videos_status", "videos", ["status"])
    op.create_index("ix_videos_deleted_at", "videos", ["deleted_at"])


def downgrade() -> None:
    op.drop_table("videos")
