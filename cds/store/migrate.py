"""Database schema migrations (Alembic), configured in code: no ``alembic.ini`` is needed.

The migration scripts live in ``cds/store/migrations/versions``. :func:`upgrade_database` is what
``cds db upgrade`` and the app start (``CDS_MIGRATE_ON_START``) run. Several processes may start
at once (workers, replicas), so the upgrade holds a lock: a PostgreSQL advisory lock, or a file
lock next to the SQLite file. A database created before migrations existed (tables, no
``alembic_version``) is recognised as revision 0001 and upgraded from there.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

__all__ = ["alembic_config", "current_revision", "head_revision", "upgrade_database"]

_SCRIPTS = Path(__file__).resolve().parent / "migrations"
_BASELINE = "0001"  # the schema the service core created with create_all
_PG_LOCK_KEY = 0x0CD5_0001  # any constant shared by every process of this service


def alembic_config(
    connection: Connection | None = None, *, url: str | None = None, output: TextIO | None = None
) -> Config:
    config = Config(output_buffer=output)
    config.set_main_option("script_location", str(_SCRIPTS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate-lock")
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade_database(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the schema to ``revision``; return the revisions before and after."""
    is_sqlite = engine.dialect.name == "sqlite"
    lock = _sqlite_file_lock(engine) if is_sqlite else _no_lock()
    with lock, engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        before = MigrationContext.configure(connection).get_current_revision()
        config = alembic_config(connection)
        if before is None and inspect(connection).has_table("shown_cards"):
            command.stamp(config, _BASELINE)
        command.upgrade(config, revision)
        after = MigrationContext.configure(connection).get_current_revision()
    return before, after


@contextmanager
def _no_lock() -> Iterator[None]:
    yield
