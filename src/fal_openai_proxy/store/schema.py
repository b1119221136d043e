"""The tables, as SQLAlchemy Core metadata: one schema for SQLite and Postgres.

The migrations in `migrations/versions/` create exactly this (a test compares them on both
engines). Times are unix seconds: floats for the request log, integers elsewhere.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()

# SQLite gives an autoincrementing row id only to `INTEGER PRIMARY KEY`, not to BIGINT.
ROW_ID = BigInteger().with_variant(Integer(), "sqlite")

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    # SHA-256 of the secret, hex; the secret itself is never stored.
    Column("key_hash", String(64), nullable=False),
    Column("key_hint", String(8), nullable=False),
    Column("name", String(200), nullable=False),
    Column("models", Text, nullable=True),  # a JSON list of globs; NULL: every model
    Column("max_budget", Float, nullable=True),  # USD
    Column("budget_period", String(8), nullable=True),  # day | week | month | NULL (lifetime)
    Column("rpm", Integer, nullable=True),
    Column("expires_at", BigInteger, nullable=True),
    Column("metadata", Text, nullable=False),  # a JSON object
    Column("created_at", Float, nullable=False),  # exposed in whole seconds
    Column("disabled", Boolean, nullable=False),
    Column("deleted_at", BigInteger, nullable=True),  # deleted keys stay, for the reports
    Column("spend", Float, nullable=False),  # USD, lifetime
    Column("period_spend", Float, nullable=False),  # USD, in the period starting period_start
    Column("period_start", BigInteger, nullable=False),
    Index("ix_api_keys_hash", "key_hash", unique=True),  # a key is found by a lookup
)

requests = Table(
    "requests",
    metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("created_at", Float, nullable=False),  # when the request arrived
    Column("request_id", String(128), nullable=False),
    # A virtual key's id, or "static", "passthrough:<fingerprint>" or "open".
    Column("key_id", String(64), nullable=False),
    Column("endpoint", String(64), nullable=False),
    Column("model", String(256), nullable=True),
    Column("route", String(32), nullable=True),
    Column("fal_app", String(256), nullable=True),
    Column("fal_request_id", String(128), nullable=True),
    Column("status", Integer, nullable=False),
    Column("error_type", String(64), nullable=True),
    Column("latency_ms", Float, nullable=False),
    Column("ttfb_ms", Float, nullable=True),
    Column("stream", Boolean, nullable=True),
    Column("input_tokens", BigInteger, nullable=True),
    Column("output_tokens", BigInteger, nullable=True),
    Column("images", Integer, nullable=True),
    Column("audio_seconds_in", Float, nullable=True),
    Column("audio_seconds_out", Float, nullable=True),
    Column("video_seconds", Float, nullable=True),
    Column("cost", Float, nullable=True),  # USD; NULL: unknown
    Column("cost_source", String(32), nullable=True),
    Column("billable_units", Float, nullable=True),
    Column("prompt", Text, nullable=True),  # LOG_PROMPTS only
    Column("answer", Text, nullable=True),  # LOG_PROMPTS only
    # The request log is read newest first, whole or by key, model or status.
    Index("ix_requests_created", "created_at", "id"),
    Index("ix_requests_key_created", "key_id", "created_at", "id"),
    Index("ix_requests_model_created", "model", "created_at", "id"),
)

# Per-day totals, kept after the request log's rows expire; GET /admin/usage reads only these.
usage_daily = Table(
    "usage_daily",
    metadata,
    Column("day", String(10), nullable=False),  # YYYY-MM-DD, UTC
    Column("key_id", String(64), nullable=False),
    Column("model", String(256), nullable=False),  # "" when the request named none
    Column("endpoint", String(64), nullable=False),
    Column("requests", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("images", BigInteger, nullable=False),
    Column("audio_seconds", Float, nullable=False),
    Column("video_seconds", Float, nullable=False),
    Column("cost", Float, nullable=False),  # known costs only (unknown counts as 0)
    Column("unpriced", BigInteger, nullable=False),  # requests whose cost is unknown
    # The key is the primary key: on SQLite a table WITHOUT ROWID keeps the rows in its order,
    # so a range of days is read in one pass (no lookup per row).
    PrimaryKeyConstraint("day", "key_id", "model", "endpoint", name="pk_usage_daily"),
    sqlite_with_rowid=False,
)

# The videos clients made (OpenAI's Videos API), for GET /v1/videos, DELETE /v1/videos/{id}
# and the background watcher (store/videos.py). Retrieve and content need no row: the signed
# id carries what they need (services/video_ids.py).
videos = Table(
    "videos",
    metadata,
    Column("seq", ROW_ID, primary_key=True, autoincrement=True),  # creation order: the cursor
    Column("lookup", String(64), nullable=False),  # SHA-256 of the id, hex
    Column("id", Text, nullable=False),
    # The creator, as the signed id names it (an HMAC of `context.client.id`: "key-0",
    # "vk-<id>", ...); a list shows a key its own videos only.
    Column("owner", String(32), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("model", String(256), nullable=False),
    Column("app", String(256), nullable=False),
    Column("request_id", String(128), nullable=False),  # fal's
    Column("prompt", Text, nullable=True),  # forgotten on deletion
    Column("seconds", String(16), nullable=False),
    Column("size", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # queued | in_progress | completed | failed
    Column("progress", Integer, nullable=False),
    Column("completed_at", BigInteger, nullable=True),
    Column("expires_at", BigInteger, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("remixed_from", Text, nullable=True),
    # Webhooks: 0 pending, 1 claimed by a sender (at `notify_at`), 2 delivered, 3 given up.
    Column("notify_state", Integer, nullable=False),
    Column("notify_at", BigInteger, nullable=True),
    # A deleted video stays a while as a tombstone, so that every replica forgets it too.
    Column("deleted_at", BigInteger, nullable=True),
    Index("ix_videos_lookup", "lookup", unique=True),
    Index("ix_videos_owner_seq", "owner", "seq"),  # a key's page, newest first
    Index("ix_videos_status", "status"),  # the open jobs the watcher follows
    Index("ix_videos_deleted_at", "deleted_at"),
)
