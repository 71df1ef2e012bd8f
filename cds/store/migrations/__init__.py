"""Alembic migration scripts of the service database (run them with ``cds db upgrade``)."""
