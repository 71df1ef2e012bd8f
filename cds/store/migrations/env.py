"""Alembic environment. :mod:`cds.store.migrate` passes a connection; offline mode renders SQL."""

from __future__ import annotations

from alembic import context

from cds.store.sql import metadata


def _run() -> None:
    config = context.config
    if context.is_offline_mode():
        context.configure(
            url=config.get_main_option("sqlalchemy.url"),
            target_metadata=metadata,
            literal_binds=True,
            render_as_batch=True,
        )
    else:
        connection = config.attributes.get("connection")
        if connection is None:
            raise RuntimeError("run migrations with `cds db upgrade` (cds.store.migrate)")
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


_run()
