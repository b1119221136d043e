"""Alembic migrations of the accounts database (run at start, or `fal-openai-proxy db upgrade`)."""
