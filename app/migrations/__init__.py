"""Alembic migrations of the service database; run via ``app.core.db.upgrade_database``."""
