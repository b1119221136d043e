"""Alembic's environment: run on the connection `store/database.py` hands over."""

from __future__ import annotations

from alembic import context

from fal_openai_proxy.store.videos import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
