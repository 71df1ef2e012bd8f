"""Discovery document shape, and the operational endpoints."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from cds.call.prefetch import render_template
from cds.kb.loader import Knowledge
from cds.protocol.wire import HOOKS, CdsResponse, DiscoveryResponse

_TOKEN = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")
_KNOWN_TOKENS = {"context.patientId", "context.encounterId", "context.userId", "userPractitionerId"}


def _services(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/cds-services")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    DiscoveryResponse.model_validate(document)  # strict: no unknown fields
    services: list[dict[str, Any]] = document["services"]
    return services


def test_discovery_lists_every_service_of_the_knowledge(
    client: TestClient, knowledge: Knowledge
) -> None:
    services = _services(client)
    assert [s["id"] for s in services] == list(knowledge.services)
    assert services, "the knowledge declares at least one service"


def test_every_service_has_the_spec_fields(client: TestClient) -> None:
    for service in _services(client):
        assert set(service) <= {"hook", "id", "title", "description", "prefetch", "version"}
        assert service["hook"] in HOOKS
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", service["id"])
        assert service["title"].strip()
        assert service["description"].strip()
        assert service["version"] == "2.0.1"
        prefetch = service["prefetch"]
        assert prefetch["patient"] == "Patient/{{context.patientId}}"
        for key, template in prefetch.items():
            assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key)
            assert set(_TOKEN.findall(template)) <= _KNOWN_TOKENS, template
            rendered = render_template(template, {"patientId": "p1"})
            assert rendered is not None
            assert "{{" not in rendered


def test_service_ids_are_unique(client: TestClient) -> None:
    ids = [s["id"] for s in _services(client)]
    assert len(ids) == len(set(ids))


def test_discovery_is_stable_between_calls(client: TestClient) -> None:
    assert client.get("/cds-services").json() == client.get("/cds-services").json()


def test_every_discovered_service_answers_with_its_own_prefetch_filled(
    client: TestClient,
) -> None:
    """Sending exactly the declared keys (empty where a search) is always a valid call."""
    for service in _services(client):
        prefetch: dict[str, Any] = {
            key: {"resourceType": "Bundle", "type": "searchset"}
            for key in service["prefetch"]
            if key != "patient"
        }
        prefetch["patient"] = {"resourceType": "Patient", "id": "p1", "gender": "female"}
        context: dict[str, Any] = {"patientId": "p1", "userId": "Practitioner/1"}
        if service["hook"] in ("order-select", "order-sign"):
            context["draftOrders"] = {"resourceType": "Bundle", "type": "collection"}
        response = client.post(
            f"/cds-services/{service['id']}",
            json={
                "hook": service["hook"],
                "hookInstance": "a6b4c1e2-0000-4000-8000-000000000001",
                "context": context,
                "prefetch": prefetch,
            },
        )
        assert response.status_code == 200, response.text
        CdsResponse.model_validate(response.json())


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_knowledge_and_database(client: TestClient, knowledge: Knowledge) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "services": len(knowledge.services),
        "rules": len(knowledge.rules),
        "database": "sqlite",
    }
