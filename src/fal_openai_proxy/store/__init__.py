"""What the proxy keeps: the database (SQLAlchemy Core, async; Alembic migrations)."""
