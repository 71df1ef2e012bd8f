"""Is a PostgreSQL schema intact after a crash? (SQLite has ``PRAGMA integrity_check``.)

With the ``amcheck`` extension (PostgreSQL's own, shipped with the server): every table's heap
is verified (``verify_heapam``) and every B-tree index checked against its table
(``bt_index_check`` with ``heapallindexed``). Without it: every table is read whole, once by a
sequential scan and once by an index scan, and the row counts must agree.
"""

from __future__ import annotations

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import DBAPIError

__all__ = ["postgres_integrity_problems"]

_TABLES = text(
    "SELECT c.oid, c.relname FROM pg_class c "
    "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' ORDER BY 2"
)
_INDEXES = text(
    "SELECT i.indexrelid, ic.relname, t.relname FROM pg_index i "
    "JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
    "JOIN pg_am am ON am.oid = ic.relam "
    "WHERE t.relnamespace = current_schema()::regnamespace AND am.amname = 'btree' ORDER BY 2"
)


def _amcheck_schema(connection: Connection) -> str | None:
    """The schema amcheck's functions live in, installing it (in ``public``) if it is not."""
    find = text(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'amcheck'"
    )
    schema = connection.execute(find).scalar()
    if schema is None:
        try:
            with connection.begin_nested():
                connection.execute(text("CREATE EXTENSION IF NOT EXISTS amcheck SCHEMA public"))
        except DBAPIError:
            return None  # not available on this server (or no right to install it)
        schema = connection.execute(find).scalar()
    return str(schema) if schema else None


def postgres_integrity_problems(url: str) -> list[str]:
    """What is wrong with the tables and indexes of the URL's current schema (empty: intact)."""
    engine = create_engine(url)
    problems: list[str] = []
    try:
        with engine.connect() as connection, connection.begin():
            tables = connection.execute(_TABLES).all()
            indexes = connection.execute(_INDEXES).all()
            assert tables, "no tables in the schema"
            amcheck = _amcheck_schema(connection)
            if amcheck is not None:
                for oid, name in tables:
                    rows = connection.execute(
                        text(f'SELECT * FROM "{amcheck}".verify_heapam(CAST(:oid AS oid))'),
                        {"oid": oid},
                    ).all()
                    problems += [f"table {name}: {row}" for row in rows]
                for oid, name, _ in indexes:
                    try:
                        with connection.begin_nested():
                            connection.execute(
                                text(f'SELECT "{amcheck}".bt_index_check(CAST(:oid AS oid), true)'),
                                {"oid": oid},
                            )
                    except DBAPIError as exc:
                        problems.append(f"index {name}: {exc.orig}")
                return problems
            for _, name in tables:
                connection.execute(text("SET LOCAL enable_indexscan = off"))
                connection.execute(text("SET LOCAL enable_bitmapscan = off"))
                seq = connection.execute(text(f'SELECT count(*) FROM "{name}"')).scalar()
                connection.execute(text("SET LOCAL enable_seqscan = off"))
                connection.execute(text("SET LOCAL enable_indexscan = on"))
                by_index = connection.execute(text(f'SELECT count(*) FROM "{name}"')).scalar()
                connection.execute(text("RESET enable_seqscan"))
                if seq != by_index:
                    problems.append(f"table {name}: {seq} rows scanned, {by_index} by index")
    finally:
        engine.dispose()
    return problems
