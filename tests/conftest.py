"""Shared fixtures: knowledge loaded once, an app per test with its own SQLite, ../shared paths."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cds.app import create_app
from cds.kb.loader import Knowledge, load_knowledge
from cds.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared, present in CI and on developer machines; absent on a user's fresh clone."""
    if not (SHARED / "data").is_dir():
        pytest.skip("../shared is not present (fresh clone)")
    return SHARED


@cache
def shipped_knowledge() -> Knowledge:
    """The knowledge this repository ships, loaded once per test process: the ``knowledge``
    fixture, and what test modules read at collection time (to parametrize by rule)."""
    return load_knowledge(REPO / "knowledge", REPO / "cards")


@pytest.fixture(scope="session")
def knowledge() -> Knowledge:
    return shipped_knowledge()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", require_jwt=False, cors_origins="")


@pytest.fixture
def client(settings: Settings, knowledge: Knowledge) -> Iterator[TestClient]:
    app = create_app(settings, knowledge=knowledge)
    with TestClient(app) as test_client:
        yield test_client
