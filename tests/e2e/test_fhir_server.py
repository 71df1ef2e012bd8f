"""End to end: the service under uvicorn fetching from a real FHIR server (Medplum).

The service is sent no prefetch and must fetch what it needs through the FHIR server with the
bearer token, and answer exactly as when it is sent everything as prefetch. A wrong token, a
slow server, a failing server and a closed port each give a defined answer: never a hang,
never a 500. Our derived prefetch queries are run by Medplum's search engine, so a query it
cannot answer (an unknown parameter matches nothing there) shows up as missing data.
"""

from __future__ import annotations

import bz2
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from cds.call.prefetch import render_template
from cds.fhir.scenarios import example_patients
from cds.kb.loader import Knowledge, Service
from cds.kb.logic import Node
from cds.kb.prefetch_plan import PrefetchPlan, plan_prefetch
from tests.e2e.conftest import BUDGET_SECONDS, FHIR_TOKEN
from tests.e2e.medplum import MedplumServer
from tests.processes import free_port

pytestmark = pytest.mark.e2e

SYNTHEA_PATIENT = "dd92a3e7-d1db-c15a-f8fe-e3847b7f07b1"  # the breast cancer patient
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"


# --- helpers ------------------------------------------------------------------------------------


def _services(knowledge: Knowledge) -> list[Service]:
    """Every shipped service; the patient-view ones first."""
    return sorted(knowledge.services.values(), key=lambda s: s.spec.hook != "patient-view")


def _call(
    service: httpx.Client,
    svc: Service,
    patient_id: str,
    *,
    fhir: MedplumServer | None = None,
    fhir_server: str | None = None,
    token: str = FHIR_TOKEN,
    prefetch: dict[str, Any] | None = None,
) -> httpx.Response:
    context: dict[str, Any] = {"patientId": patient_id, "userId": "Practitioner/e2e"}
    if svc.spec.hook.startswith("encounter-"):
        context["encounterId"] = "e2e-encounter"
    if svc.spec.hook.startswith("order-"):
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": []}
    body: dict[str, Any] = {
        "hook": svc.spec.hook,
        "hookInstance": str(uuid.uuid4()),
        "context": context,
    }
    server = fhir_server or (fhir.base if fhir else None)
    if server:
        body["fhirServer"] = server
        body["fhirAuthorization"] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "cds-service",
        }
    if prefetch is not None:
        body["prefetch"] = prefetch
    return service.post(f"/cds-services/{svc.spec.id}", json=body)


def _full_prefetch(fhir: MedplumServer, plan: PrefetchPlan, patient_id: str) -> dict[str, Any]:
    """Every key filled the way an EHR would: the read's resource, the searches' Bundles."""
    prefetch: dict[str, Any] = {}
    for key in plan.keys:
        query = render_template(key.template, {"patientId": patient_id})
        assert query is not None
        found = fhir.search_all(query)
        if key.resource_type == "Patient":
            prefetch[key.name] = found[0]
        else:
            prefetch[key.name] = {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": r} for r in found],
            }
    return prefetch


def _without_uuids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_uuids(v) for k, v in value.items() if k != "uuid"}
    if isinstance(value, list):
        return [_without_uuids(v) for v in value]
    return value


def _outcome(response: httpx.Response, status: int, says: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    outcome: dict[str, Any] = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert says in outcome["issue"][0]["diagnostics"], outcome
    assert FHIR_TOKEN not in response.text
    return outcome


def _same_answer_both_ways(
    service: httpx.Client, fhir: MedplumServer, svc: Service, patient_id: str
) -> list[dict[str, Any]]:
    """No prefetch (fetched with the token) and full prefetch give the same cards."""
    fetched = _call(service, svc, patient_id, fhir=fhir)
    assert fetched.status_code == 200, fetched.text
    log = fhir.requests()
    assert log, "the service fetched nothing"
    assert all(entry["authorized"] for entry in log)
    asked = {unquote(entry["url"]).split("&_count=")[0] for entry in log}
    for key in svc.prefetch.keys:
        query = render_template(key.template, {"patientId": patient_id})
        assert f"/{query}" in asked, (key.name, sorted(asked))
    prefetched = _call(
        service, svc, patient_id, prefetch=_full_prefetch(fhir, svc.prefetch, patient_id)
    )
    assert prefetched.status_code == 200, prefetched.text
    cards: list[dict[str, Any]] = fetched.json()["cards"]
    assert _without_uuids(cards) == _without_uuids(prefetched.json()["cards"])
    return cards


# --- a small patient with one resource of every kind a rule can read ---------------------------


def _every_kind_patient(patient_id: str, observation_code: tuple[str, str]) -> dict[str, Any]:
    subject = {"reference": f"Patient/{patient_id}"}
    today = datetime.now(UTC).date()
    recent = (today - timedelta(days=30)).isoformat()
    concept = {"coding": [{"system": "http://example.org/codes", "code": "x"}]}
    system, code = observation_code
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
            "id": f"{patient_id}-pain",
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {"coding": [{"system": ICD10, "code": "M54.50", "display": "Low back pain"}]},
            "subject": subject,
            "onsetDateTime": recent,
        },
        {
            "resourceType": "Observation",
            "id": f"{patient_id}-obs",
            "status": "final",
            "code": {"coding": [{"system": system, "code": code}]},
            "subject": subject,
            "effectiveDateTime": recent,
        },
        {
            "resourceType": "Observation",
            "id": f"{patient_id}-obs-other",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "0000-0"}]},
            "subject": subject,
            "effectiveDateTime": recent,
        },
        {
            "resourceType": "MedicationRequest",
            "id": f"{patient_id}-mr",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": concept,
            "subject": subject,
        },
        {
            "resourceType": "MedicationStatement",
            "id": f"{patient_id}-ms",
            "status": "active",
            "medicationCodeableConcept": concept,
            "subject": subject,
        },
        {
            "resourceType": "MedicationAdministration",
            "id": f"{patient_id}-ma",
            "status": "completed",
            "medicationCodeableConcept": concept,
            "subject": subject,
            "effectiveDateTime": recent,
        },
        {
            "resourceType": "Procedure",
            "id": f"{patient_id}-proc",
            "status": "completed",
            "code": concept,
            "subject": subject,
        },
        {
            "resourceType": "DocumentReference",
            "id": f"{patient_id}-doc",
            "status": "current",
            "type": concept,
            "subject": subject,
            "content": [{"attachment": {"contentType": "text/plain"}}],
        },
        {
            "resourceType": "DocumentReference",
            "id": f"{patient_id}-doc-old",
            "status": "superseded",
            "type": concept,
            "subject": subject,
            "content": [{"attachment": {"contentType": "text/plain"}}],
        },
        {
            "resourceType": "ResearchSubject",
            "id": f"{patient_id}-rs",
            "status": "on-study",
            "study": {"reference": "ResearchStudy/e2e-study"},
            "individual": subject,
        },
        {
            "resourceType": "ServiceRequest",
            "id": f"{patient_id}-sr",
            "status": "active",
            "intent": "order",
            "code": concept,
            "subject": subject,
        },
    ]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in resources],
    }


def _every_kind_plan(knowledge: Knowledge) -> tuple[PrefetchPlan, tuple[str, str]]:
    """The prefetch plan of a rule reading every fact kind, and one observation code it asks."""
    observation_sets = [
        vs_id
        for vs_id, vs in sorted(knowledge.valuesets.items())
        if vs.codes and all(system == "http://loinc.org" for system, _ in vs.codes)
    ]
    assert observation_sets, "the knowledge has a LOINC value set"
    observation_vs = observation_sets[0]
    any_vs = next(iter(sorted(knowledge.valuesets)))
    nodes = [Node.model_validate({"observation": {"valueset": observation_vs}})] + [
        Node.model_validate({kind: {"valueset": any_vs}})
        for kind in (
            "condition",
            "medication",
            "procedure",
            "document",
            "research-subject",
            "service-request",
        )
    ]
    template_rule = next(iter(knowledge.rules.values()))
    rule = template_rule.model_copy(
        update={"logic": template_rule.logic.model_copy(update={"inclusion": tuple(nodes)})}
    )
    plan = plan_prefetch("patient-view", [rule], knowledge.definitions, knowledge.valuesets)
    return plan, sorted(knowledge.valuesets[observation_vs].codes)[0]


# --- the tests -----------------------------------------------------------------------------------


def test_derived_prefetch_queries_are_valid_medplum_searches(
    fhir: MedplumServer, knowledge: Knowledge
) -> None:
    plan, observation_code = _every_kind_plan(knowledge)
    patient_id = "e2e-every-kind"
    fhir.load(_every_kind_patient(patient_id, observation_code))
    expected = {
        "Patient": {patient_id},
        "Condition": {f"{patient_id}-bc", f"{patient_id}-pain"},
        "Observation": {f"{patient_id}-obs"},  # not the one with another code
        "MedicationRequest": {f"{patient_id}-mr"},
        "MedicationStatement": {f"{patient_id}-ms"},
        "MedicationAdministration": {f"{patient_id}-ma"},
        "Procedure": {f"{patient_id}-proc"},
        "DocumentReference": {f"{patient_id}-doc"},  # status=current only
        "ResearchSubject": {f"{patient_id}-rs"},
        "ServiceRequest": {f"{patient_id}-sr"},
    }
    assert {key.resource_type for key in plan.keys} == set(expected)
    shipped = {t for s in knowledge.services.values() for t in s.prefetch.templates().values()}
    templates = {key.template: key.resource_type for key in plan.keys}
    for template in shipped:
        templates.setdefault(template, template.split("?")[0].split("/")[0])
    for template, resource_type in sorted(templates.items()):
        query = render_template(template, {"patientId": patient_id})
        assert query is not None
        found = fhir.search_all(query)
        ids = {r["id"] for r in found if r["resourceType"] == resource_type}
        if template in {key.template for key in plan.keys}:
            assert ids == expected[resource_type], template
        else:  # a shipped template narrowed by codes: valid, and only this patient's data
            assert ids <= {r for v in expected.values() for r in v}, template


def test_generated_patients_fetched_without_prefetch_match_full_prefetch(
    fhir: MedplumServer, service: httpx.Client, knowledge: Knowledge
) -> None:
    scenarios = example_patients(now=datetime.now(UTC).date())
    assert scenarios
    total_cards = 0
    for scenario in scenarios:
        loaded = fhir.load(scenario.bundle)
        assert loaded["loaded"] == len(scenario.bundle["entry"])
        patient = next(
            e["resource"]
            for e in scenario.bundle["entry"]
            if e["resource"]["resourceType"] == "Patient"
        )
        for svc in _services(knowledge):
            fhir.reset()
            fhir.control(pageSize=10)  # small pages: the service follows next links
            total_cards += len(_same_answer_both_ways(service, fhir, svc, patient["id"]))
    assert total_cards > 0, "some generated patient shows a card"


def test_paging_is_followed_with_the_token(
    fhir: MedplumServer, service: httpx.Client, knowledge: Knowledge
) -> None:
    _, observation_code = _every_kind_plan(knowledge)
    fhir.load(_every_kind_patient("e2e-paging", observation_code))
    fhir.control(pageSize=1)
    svc = _services(knowledge)[0]
    cards = _same_answer_both_ways(service, fhir, svc, "e2e-paging")
    offsets = [e["url"] for e in fhir.requests() if "_offset=1" in e["url"]]
    assert offsets, "a second page was asked for"
    assert cards, "new back pain after breast cancer shows a card"


@pytest.mark.shared
def test_synthea_patient_fetched_without_prefetch_matches_full_prefetch(
    fhir: MedplumServer, service: httpx.Client, knowledge: Knowledge, shared_dir: Path
) -> None:
    path = shared_dir / "data" / "synthea" / f"{SYNTHEA_PATIENT}.json.bz2"
    bundle = json.loads(bz2.decompress(path.read_bytes()))
    loaded = fhir.load(bundle)
    assert loaded["loaded"] == len(bundle["entry"])
    for svc in _services(knowledge):
        fhir.reset()
        _same_answer_both_ways(service, fhir, svc, SYNTHEA_PATIENT)


# --- failures: each has a defined answer -----------------------------------------------------


@pytest.fixture
def loaded_patient(fhir: MedplumServer, knowledge: Knowledge) -> str:
    _, observation_code = _every_kind_plan(knowledge)
    fhir.load(_every_kind_patient("e2e-failures", observation_code))
    fhir.reset()
    return "e2e-failures"


def test_wrong_token_is_412(
    fhir: MedplumServer, service: httpx.Client, knowledge: Knowledge, loaded_patient: str
) -> None:
    svc = _services(knowledge)[0]
    response = _call(service, svc, loaded_patient, fhir=fhir, token="not-the-token")
    _outcome(response, 412, "refused our access token")
    log = fhir.requests()
    assert log
    assert not any(entry["authorized"] for entry in log)


def test_slow_server_past_the_budget_is_412(
    fhir: MedplumServer, tight_service: httpx.Client, knowledge: Knowledge, loaded_patient: str
) -> None:
    fhir.control(mode="slow", delayMs=int(BUDGET_SECONDS * 4000))
    svc = _services(knowledge)[0]
    response = _call(tight_service, svc, loaded_patient, fhir=fhir)
    _outcome(response, 412, "did not answer")


def test_one_slow_query_degrades_or_is_412(
    fhir: MedplumServer, tight_service: httpx.Client, knowledge: Knowledge, loaded_patient: str
) -> None:
    """Only one resource type is slow: the rules that do not need it still run."""
    svc = _services(knowledge)[0]
    optional = [key for key in svc.prefetch.keys if not key.required]
    assert optional
    slow = min(
        optional, key=lambda k: sum(k.name in keys for keys in svc.prefetch.rule_keys.values())
    )
    fhir.control(
        mode="slow", delayMs=int(BUDGET_SECONDS * 4000), slowPaths=f"^/{slow.resource_type}$"
    )
    response = _call(tight_service, svc, loaded_patient, fhir=fhir)
    if all(slow.name in keys for keys in svc.prefetch.rule_keys.values()):
        outcome = _outcome(response, 412, "no rule can run")
        assert f"prefetch.{slow.name}" in outcome["issue"][0]["expression"]
    else:
        assert response.status_code == 200, response.text


def test_server_error_is_412(
    fhir: MedplumServer, service: httpx.Client, knowledge: Knowledge, loaded_patient: str
) -> None:
    fhir.control(mode="error")
    svc = _services(knowledge)[0]
    _outcome(_call(service, svc, loaded_patient, fhir=fhir), 412, "answered HTTP 500")


def test_connection_refused_is_412(service: httpx.Client, knowledge: Knowledge) -> None:
    closed = f"http://127.0.0.1:{free_port()}/fhir"
    svc = _services(knowledge)[0]
    response = _call(service, svc, "anyone", fhir_server=closed)
    _outcome(response, 412, "could not be reached")


def test_the_service_keeps_answering_after_the_failures(
    fhir: MedplumServer, tight_service: httpx.Client, knowledge: Knowledge, loaded_patient: str
) -> None:
    fhir.control(mode="slow", delayMs=int(BUDGET_SECONDS * 4000))
    svc = _services(knowledge)[0]
    assert _call(tight_service, svc, loaded_patient, fhir=fhir).status_code == 412
    fhir.reset()
    assert _call(tight_service, svc, loaded_patient, fhir=fhir).status_code == 200
    assert tight_service.get("/healthz").status_code == 200


def test_a_search_past_the_page_cap_is_unavailable_not_partial(
    fhir: MedplumServer, capped_service: httpx.Client, knowledge: Knowledge
) -> None:
    """Eleven one-resource pages of conditions with a cap of ten: the list is not used."""
    patient_id = "e2e-page-cap"
    subject = {"reference": f"Patient/{patient_id}"}
    resources: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": patient_id, "gender": "female"}
    ] + [
        {
            "resourceType": "Condition",
            "id": f"{patient_id}-{n}",
            "code": {"coding": [{"system": ICD10, "code": "R51.9"}]},
            "subject": subject,
        }
        for n in range(11)
    ]
    fhir.load(
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": r} for r in resources],
        }
    )
    fhir.reset()
    fhir.control(pageSize=1)
    svc = _services(knowledge)[0]
    others = {k.name: None for k in svc.prefetch.keys if k.name not in ("patient", "conditions")}
    response = _call(capped_service, svc, patient_id, fhir=fhir, prefetch=others)
    conditions_pages = [e for e in fhir.requests() if e["url"].startswith("/Condition")]
    assert len(conditions_pages) == 10
    if all("conditions" in keys for keys in svc.prefetch.rule_keys.values()):
        outcome = _outcome(response, 412, "no rule can run")
        assert "more than 10 pages" in outcome["issue"][0]["diagnostics"]
    else:
        assert response.status_code == 200, response.text
