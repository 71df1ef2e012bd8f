"""API fixtures: an app whose knowledge has a service on every hook."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from cds.app import create_app
from cds.kb.loader import Knowledge
from cds.settings import Settings
from tests.hook_services import with_every_hook


@pytest.fixture(scope="session")
def every_hook_knowledge(knowledge: Knowledge) -> Knowledge:
    return with_every_hook(knowledge)


@pytest.fixture
def api(settings: Settings, every_hook_knowledge: Knowledge) -> Iterator[TestClient]:
    app = create_app(settings, knowledge=every_hook_knowledge)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
