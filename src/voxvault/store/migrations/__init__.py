"""Alembic migrations shipped inside the package; run them with ``Database.migrate()``."""
