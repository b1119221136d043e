"""Alembic's entry point. The proxy runs it through `store/db.py` with a live connection
(`config.attributes["connection"]`); there is no alembic.ini."""

from __future__ import annotations

from alembic import context

from fal_openai_proxy.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
