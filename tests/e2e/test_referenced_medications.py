"""End to end through Medplum: a MedicationRequest that references a separate Medication.

The service, sent no prefetch, asks Medplum for medication orders with
``_include=MedicationRequest:medication`` and reads the Medication that comes with them; sent
a prefetch that lacks the Medication, it reads ``Medication/{id}`` from the server. Either way
a tamoxifen order coded only on the Medication counts as endocrine therapy.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from cds.kb.loader import Knowledge, Service
from tests.e2e.medplum import MedplumServer
from tests.e2e.test_fhir_server import _call

pytestmark = pytest.mark.e2e

RULE = "hr-positive-metastatic-without-endocrine-therapy"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"


def _service(knowledge: Knowledge) -> Service:
    return next(
        s
        for s in knowledge.services.values()
        if s.spec.hook == "patient-view" and any(r.id == RULE for r in s.rules)
    )


def _patient(patient_id: str, medication_code: str, display: str) -> dict[str, Any]:
    subject = {"reference": f"Patient/{patient_id}"}
    resources: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": patient_id,
            "gender": "female",
            "birthDate": "1961-04-02",
        },
        {
            "resourceType": "Condition",
            "id": f"{patient_id}-bc",
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {"coding": [{"system": ICD10, "code": "C50.412"}]},
            "subject": subject,
            "onsetDateTime": "2019-03-04",
        },
        {
            "resourceType": "Condition",
            "id": f"{patient_id}-met",
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {"coding": [{"system": ICD10, "code": "C78.7"}]},
            "subject": subject,
            "onsetDateTime": "2025-01-15",
        },
        {
            "resourceType": "Observation",
            "id": f"{patient_id}-er",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "85337-4"}]},
            "valueCodeableConcept": {
                "coding": [{"system": "http://snomed.info/sct", "code": "10828004"}]
            },
            "subject": subject,
            "effectiveDateTime": "2025-01-20",
        },
        {
            "resourceType": "Medication",
            "id": f"{patient_id}-med",
            "code": {"coding": [{"system": RXNORM, "code": medication_code, "display": display}]},
        },
        {
            "resourceType": "MedicationRequest",
            "id": f"{patient_id}-mr",
            "status": "active",
            "intent": "order",
            "medicationReference": {"reference": f"Medication/{patient_id}-med"},
            "subject": subject,
            "authoredOn": "2025-03-01",
        },
    ]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in resources],
    }


def _fired(response: httpx.Response) -> bool:
    """Whether the rule's card is in the answer (a card names its rule in its links)."""
    assert response.status_code == 200, response.text
    return any(RULE in str(card) for card in response.json()["cards"])


def test_the_included_medication_is_read(
    fhir: MedplumServer, service: httpx.Client, knowledge: Knowledge
) -> None:
    svc = _service(knowledge)
    fhir.load(_patient("e2e-med-tamoxifen", "198240", "tamoxifen 10 MG Oral Tablet"))
    fhir.load(_patient("e2e-med-other", "26225", "ondansetron"))
    fhir.reset()
    assert not _fired(_call(service, svc, "e2e-med-tamoxifen", fhir=fhir))
    asked = [unquote(entry["url"]) for entry in fhir.requests()]
    assert any("_include=MedicationRequest:medication" in url for url in asked), asked
    assert not any("/Medication/" in url for url in asked), "the include brought it"
    assert _fired(_call(service, svc, "e2e-med-other", fhir=fhir))


def test_a_medication_the_prefetch_lacks_is_read_from_the_server(
    fhir: MedplumServer, service: httpx.Client, knowledge: Knowledge
) -> None:
    svc = _service(knowledge)
    patient_id = "e2e-med-prefetch"
    bundle = _patient(patient_id, "198240", "tamoxifen 10 MG Oral Tablet")
    fhir.load(bundle)
    fhir.reset()
    by_type: dict[str, list[dict[str, Any]]] = {}
    for entry in bundle["entry"]:
        by_type.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    prefetch: dict[str, Any] = {}
    for key in svc.prefetch.keys:
        if key.resource_type == "Patient":
            prefetch[key.name] = by_type["Patient"][0]
        else:  # the Medication is left out, as an EHR that ignores _include would
            found = by_type.get(key.resource_type, [])
            prefetch[key.name] = {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": r} for r in found],
            }
    response = _call(service, svc, patient_id, fhir=fhir, prefetch=prefetch)
    assert not _fired(response)
    asked = [unquote(entry["url"]) for entry in fhir.requests()]
    assert any(url.endswith(f"/Medication/{patient_id}-med") for url in asked), asked
