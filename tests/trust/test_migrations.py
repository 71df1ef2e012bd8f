"""Alembic migrations on SQLite and PostgreSQL: from empty, from a pre-migration database,
down and up again, and the schema they build equals the tables the code queries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import Engine, inspect, text

from cds.app import create_app
from cds.cli import main
from cds.kb.loader import Knowledge
from cds.settings import Settings
from cds.store.migrate import alembic_config, current_revision, head_revision, upgrade_database
from cds.store.sql import SCHEMA_HEAD, make_engine, metadata, open_store


@pytest.fixture
def engine(db_settings: Settings) -> Any:
    created = make_engine(db_settings)
    yield created
    created.dispose()


def schema_differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))


def test_from_empty_to_head_matches_the_code(engine: Engine) -> None:
    assert upgrade_database(engine) == (None, head_revision())
    assert schema_differences(engine) == []
    assert upgrade_database(engine) == (head_revision(), head_revision())  # idempotent


def test_a_database_from_before_migrations_is_adopted(engine: Engine) -> None:
    upgrade_database(engine, "0001")
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))  # as create_all left it
        connection.execute(
            text(
                "INSERT INTO feedback (item_key, service_id, card_uuid, outcome,"
                " accepted_suggestions, outcome_at, received_at)"
                " VALUES ('k1', 's', 'c1', 'accepted', '[]', :t, :t)"
            ),
            {"t": datetime(2026, 1, 1, tzinfo=UTC)},
        )
    assert upgrade_database(engine) == (None, head_revision())
    assert schema_differences(engine) == []
    with engine.connect() as connection:
        assert connection.execute(text("SELECT card_uuid FROM feedback")).scalar() == "c1"


def test_down_to_base_and_up_again(engine: Engine) -> None:
    upgrade_database(engine)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert not inspect(engine).has_table("feedback")
    upgrade_database(engine)
    assert current_revision(engine) == head_revision()
    assert schema_differences(engine) == []


def test_the_app_migrates_at_start_unless_told_not_to(
    db_settings: Settings, knowledge: Knowledge, engine: Engine
) -> None:
    off = db_settings.model_copy(update={"migrate_on_start": False})
    with TestClient(create_app(off, knowledge=knowledge)) as client:
        assert client.get("/healthz").status_code == 200
    assert current_revision(engine) is None
    with TestClient(create_app(db_settings, knowledge=knowledge)) as client:
        assert client.get("/readyz").status_code == 200
    assert current_revision(engine) == head_revision()


def test_the_db_commands(
    db_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CDS_DATA_DIR", str(db_settings.data_dir))
    if db_settings.database_url:
        monkeypatch.setenv("CDS_DATABASE_URL", db_settings.database_url)
    else:
        monkeypatch.delenv("CDS_DATABASE_URL", raising=False)
    assert main(["db", "current"]) == 1
    assert "behind: run `cds db upgrade`" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0
    assert f"schema (empty) -> {head_revision()}" in capsys.readouterr().out
    assert main(["db", "current"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_schema_head_names_the_newest_migration() -> None:
    assert head_revision() == SCHEMA_HEAD


def test_opening_a_database_at_head_runs_no_migration(
    db_settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade_database(engine, "0001")  # one behind: opening brings it up to date
    open_store(db_settings).close()
    assert current_revision(engine) == head_revision()

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("migrated a database already at head")

    monkeypatch.setattr("cds.store.migrate.upgrade_database", refuse)
    open_store(db_settings).close()  # at head: checked with one query, nothing else
