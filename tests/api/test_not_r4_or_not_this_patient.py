"""Data that is not FHIR R4, or not about context.patientId, is refused with a 400 naming the
resource and the field (cds/engine/record_guard.py), never read as something it is not."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds.kb.loader import Knowledge
from tests.fhir_resources import searchset
from tests.hook_services import service_for

PATIENT = {"resourceType": "Patient", "id": "p1"}
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
TAMOXIFEN = {"coding": [{"system": RXNORM, "code": "10324", "display": "tamoxifen"}]}
BREAST_CANCER = {
    "coding": [{"system": "http://snomed.info/sct", "code": "254837009", "display": "BC"}]
}


def _call(
    client: TestClient, knowledge: Knowledge, hook: str, prefetch: dict[str, Any], **context: Any
) -> Any:
    service = service_for(knowledge, hook)
    keys = {key.name: None for key in service.prefetch.keys}
    body = {
        "hook": hook,
        "hookInstance": "i-1",
        "context": {"patientId": "p1", **context},
        "prefetch": keys | {"patient": PATIENT} | prefetch,
    }
    return client.post(f"/cds-services/{service.spec.id}", json=body)


def _issue(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    issue: dict[str, Any] = response.json()["issue"][0]
    return issue


NOT_R4 = [
    (
        "conditions",
        {
            "resourceType": "Condition",
            "id": "c1",
            "clinicalStatus": "resolved",
            "code": BREAST_CANCER,
            "subject": {"reference": "Patient/p1"},
        },
        "Condition.clinicalStatus",
    ),
    (
        "conditions",
        {
            "resourceType": "Condition",
            "id": "c2",
            "code": BREAST_CANCER,
            "patient": {"reference": "Patient/p1"},
        },
        "Condition.patient",
    ),
    (
        "medicationRequests",
        {
            "resourceType": "MedicationRequest",
            "id": "m1",
            "status": "active",
            "medication": {"concept": TAMOXIFEN},
            "subject": {"reference": "Patient/p1"},
        },
        "MedicationRequest.medication",
    ),
    (
        "medicationStatements",
        {
            "resourceType": "MedicationStatement",
            "id": "s1",
            "status": "completed",
            "taken": "y",
            "medicationCodeableConcept": TAMOXIFEN,
            "subject": {"reference": "Patient/p1"},
        },
        "MedicationStatement.taken",
    ),
    (
        "imagingStudies",
        {
            "resourceType": "ImagingStudy",
            "id": "i1",
            "status": "available",
            # DICOM modality MG (digital mammography), as an R5 CodeableConcept
            "modality": [
                {
                    "coding": [
                        {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "MG"}
                    ]
                }
            ],
            "subject": {"reference": "Patient/p1"},
        },
        "ImagingStudy.modality",
    ),
]


@pytest.mark.parametrize(("key", "resource", "field"), NOT_R4, ids=[n[2] for n in NOT_R4])
def test_another_fhir_versions_shape_is_refused_naming_resource_and_field(
    api: TestClient, every_hook_knowledge: Knowledge, key: str, resource: dict[str, Any], field: str
) -> None:
    issue = _issue(_call(api, every_hook_knowledge, "patient-view", {key: searchset(resource)}))
    assert issue["code"] == "not-supported"
    assert issue["expression"] == [field]
    assert f"{resource['resourceType']}/{resource['id']}" in issue["diagnostics"]
    assert "R4" in issue["diagnostics"]


def test_an_r5_draft_order_is_refused(api: TestClient, every_hook_knowledge: Knowledge) -> None:
    draft = {
        "resourceType": "MedicationRequest",
        "id": "d1",
        "status": "draft",
        "intent": "order",
        "medication": {"concept": TAMOXIFEN},
        "subject": {"reference": "Patient/p1"},
    }
    draft_orders = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft}]}
    response = _call(api, every_hook_knowledge, "order-sign", {}, draftOrders=draft_orders)
    issue = _issue(response)
    assert issue["expression"] == ["MedicationRequest.medication"]
    assert "context.draftOrders" in issue["diagnostics"]


def test_a_prefetched_patient_that_is_not_the_context_patient_is_refused(
    api: TestClient, every_hook_knowledge: Knowledge
) -> None:
    other = {"resourceType": "Patient", "id": "p2"}
    issue = _issue(_call(api, every_hook_knowledge, "patient-view", {"patient": other}))
    assert issue["code"] == "invalid"
    assert issue["expression"] == ["Patient.id"]
    assert "Patient/p2" in issue["diagnostics"]
    assert "(p1)" in issue["diagnostics"]


@pytest.mark.parametrize("reference", ["Patient/p2", "urn:uuid:p2"])
def test_a_resource_about_another_patient_is_refused(
    api: TestClient, every_hook_knowledge: Knowledge, reference: str
) -> None:
    condition = {
        "resourceType": "Condition",
        "id": "c9",
        "code": BREAST_CANCER,
        "subject": {"reference": reference},
    }
    prefetch = {"conditions": searchset(condition)}
    response = _call(api, every_hook_knowledge, "patient-view", prefetch)
    issue = _issue(response)
    assert issue["expression"] == ["Condition.subject"]
    assert "Condition/c9" in issue["diagnostics"]


def test_r4_data_of_this_patient_is_read(api: TestClient, every_hook_knowledge: Knowledge) -> None:
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": BREAST_CANCER,
        "subject": {"reference": "Patient/p1"},
    }
    prefetch = {"conditions": searchset(condition)}
    response = _call(api, every_hook_knowledge, "patient-view", prefetch)
    assert response.status_code == 200, response.text
