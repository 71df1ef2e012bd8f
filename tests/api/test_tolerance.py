"""Odd data inside the tolerant parts of a request (prefetch, draft orders) never gives a 500."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds.kb.loader import Knowledge
from tests.hook_services import service_for

PATIENT = {"resourceType": "Patient", "id": "p1"}


def _call(client: TestClient, knowledge: Knowledge, hook: str, **body: Any) -> Any:
    service = service_for(knowledge, hook)
    payload = {"hook": hook, "hookInstance": "i-1", **body}
    return client.post(f"/cds-services/{service.spec.id}", json=payload)


def _patient_only(knowledge: Knowledge, hook: str) -> dict[str, Any]:
    """The patient, and ``null`` (no data) for every other key of the service."""
    keys = service_for(knowledge, hook).prefetch.keys
    return {key.name: None for key in keys} | {"patient": PATIENT}


@pytest.mark.parametrize(
    "draft_orders",
    [
        {"resourceType": "Bundle", "entry": [{"resource": {"id": "no-type"}}]},
        {"resourceType": "Bundle", "entry": 5},
        {"resourceType": "Bundle", "entry": [None, "x", {"resource": []}]},
        {"resourceType": "Bundle"},
        {},
    ],
    ids=["no-resourceType", "entry-number", "junk-entries", "no-entry", "empty-object"],
)
@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_odd_draft_orders_are_tolerated(
    api: TestClient, every_hook_knowledge: Knowledge, hook: str, draft_orders: Any
) -> None:
    context = {
        "patientId": "p1",
        "selections": ["MedicationRequest/1", 5, None],
        "draftOrders": draft_orders,
    }
    prefetch = _patient_only(every_hook_knowledge, hook)
    response = _call(api, every_hook_knowledge, hook, context=context, prefetch=prefetch)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "conditions",
    [
        {"resourceType": "Bundle", "entry": 5},
        {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": 3}}], "link": "x"},
        {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Condition"}}]},
        {"resourceType": "Condition", "code": "not a concept", "subject": "Patient/p1"},
        {
            "resourceType": "Bundle",
            "entry": [{"resource": {"resourceType": "Condition", "code": 7}}],
        },
        {"no": "resourceType"},
    ],
)
def test_odd_prefetch_values_are_tolerated(
    api: TestClient, every_hook_knowledge: Knowledge, conditions: Any
) -> None:
    response = _call(
        api,
        every_hook_knowledge,
        "patient-view",
        context={"patientId": "p1"},
        prefetch=_patient_only(every_hook_knowledge, "patient-view") | {"conditions": conditions},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"cards": []}


@pytest.mark.parametrize("value", ["a string", 5, [PATIENT], True])
def test_prefetch_values_that_are_not_resources_count_as_failed(
    api: TestClient, every_hook_knowledge: Knowledge, value: Any
) -> None:
    """Like an OperationOutcome: the key must be fetched, and there is no server here."""
    response = _call(
        api,
        every_hook_knowledge,
        "patient-view",
        context={"patientId": "p1"},
        prefetch={"patient": value},
    )
    assert response.status_code == 412
    assert response.json()["issue"][0]["expression"] == ["prefetch.patient"]
