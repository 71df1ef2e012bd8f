"""Contract fixtures: the examples folder, and an app that can reach no FHIR server.

Many examples name a FHIR server on the internet. Tests talk to loopback only, so the app's
shared HTTP client is replaced by one whose transport refuses every connection and records
what was attempted (URL and Authorization header): that is also how the tests check where a
token would have gone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from cds.app import create_app
from cds.kb.loader import Knowledge
from cds.runtime import Runtime
from cds.settings import Settings
from tests.hook_services import with_every_hook


@dataclass
class RefusingTransport:
    """Every request fails as 'connection refused'; ``attempts`` keeps (url, authorization)."""

    attempts: list[tuple[str, str | None]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.attempts.append((str(request.url), request.headers.get("authorization")))
        raise httpx.ConnectError("connection refused (tests reach no FHIR server)")


@dataclass
class ContractApp:
    client: TestClient
    knowledge: Knowledge
    transport: RefusingTransport


@pytest.fixture(scope="session")
def examples(shared_dir: Path) -> Path:
    folder = shared_dir / "data" / "cds-hooks-examples"
    if not folder.is_dir():
        pytest.skip("cds-hooks-examples is not in ../shared")
    return folder


@pytest.fixture(scope="session")
def contract_knowledge(knowledge: Knowledge) -> Knowledge:
    return with_every_hook(knowledge, always=True)


@pytest.fixture
def contract_app(settings: Settings, contract_knowledge: Knowledge) -> Iterator[ContractApp]:
    transport = RefusingTransport()
    app = create_app(settings, knowledge=contract_knowledge)
    with TestClient(app) as client:
        runtime: Runtime = app.state.runtime
        shipped = runtime.fhir_transport
        runtime.fhir_transport = httpx.MockTransport(transport)
        try:
            yield ContractApp(client=client, knowledge=contract_knowledge, transport=transport)
        finally:
            runtime.fhir_transport = shipped
