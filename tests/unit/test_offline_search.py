"""Offline requests hold what a FHIR server would answer to each prefetch query (issue 13).

Codes used here are LOINC (loinc.org: 2000-8 calcium moles/volume, 17861-6 calcium mass/volume,
8867-4 heart rate), SNOMED CT 24623002 (screening mammography, as in the knowledge's mammography
value set) and ICD-10-CM C50.911; RxNorm 10324 (tamoxifen) is only a label here.
"""

from __future__ import annotations

from typing import Any

import pytest

from cds.call.offline_search import answer_query, token_values
from cds.call.prefetch import search_parameters
from cds.call.request_builder import request_from_resources
from cds.kb.loader import Knowledge
from cds.kb.prefetch_plan import PrefetchKey, PrefetchPlan
from tests.fhir_resources import medication_request

LOINC = "http://loinc.org"
LOINC_OID = "urn:oid:2.16.840.1.113883.6.1"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
PATIENT = {"resourceType": "Patient", "id": "p1"}


def _coded(rtype: str, rid: str, *codings: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"resourceType": rtype, "id": rid, "code": {"coding": list(codings)}, **extra}


def _obs(rid: str, *codings: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return _coded("Observation", rid, *codings, **extra)


def _ids(found: list[dict[str, Any]]) -> list[str]:
    return [str(r["id"]) for r in found]


def _answer(query: str, *resources: dict[str, Any]) -> list[str]:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        by_type.setdefault(resource["resourceType"], []).append(resource)
    return _ids(answer_query(query, by_type))


CALCIUM = {"system": LOINC, "code": "2000-8"}
CALCIUM_MASS = {"system": LOINC, "code": "17861-6"}
HEART_RATE = {"system": LOINC, "code": "8867-4"}


def test_system_and_code_keeps_only_that_code() -> None:
    found = _answer(
        f"Observation?patient=p1&code={LOINC}|2000-8",
        _obs("ca", CALCIUM),
        _obs("hr", HEART_RATE),
    )
    assert found == ["ca"]


def test_a_code_in_a_second_coding_matches() -> None:
    local = {"system": "urn:example:lab", "code": "CA"}
    assert _answer(f"Observation?code={LOINC}|2000-8", _obs("ca", local, CALCIUM)) == ["ca"]


def test_comma_means_or_and_record_order_is_kept() -> None:
    found = _answer(
        f"Observation?code={LOINC}|17861-6,{LOINC}|2000-8",
        _obs("a", CALCIUM),
        _obs("b", HEART_RATE),
        _obs("c", CALCIUM_MASS),
    )
    assert found == ["a", "c"]


def test_bar_code_matches_only_a_coding_without_system() -> None:
    found = _answer(
        "Observation?code=|2000-8",
        _obs("no-system", {"code": "2000-8"}),
        _obs("loinc", CALCIUM),
    )
    assert found == ["no-system"]


def test_bare_code_matches_any_system() -> None:
    found = _answer(
        "Observation?code=2000-8",
        _obs("loinc", CALCIUM),
        _obs("local", {"system": "urn:example:lab", "code": "2000-8"}),
        _obs("none", {"code": "2000-8"}),
        _obs("other", HEART_RATE),
    )
    assert found == ["loinc", "local", "none"]


def test_system_bar_matches_any_code_of_the_system() -> None:
    found = _answer(
        f"Observation?code={LOINC}|",
        _obs("loinc", HEART_RATE),
        _obs("snomed", {"system": SNOMED, "code": "24623002"}),
    )
    assert found == ["loinc"]


def test_system_aliases_and_icd_dots_are_compared_as_the_record_reader_does() -> None:
    """A server compares system URIs literally; offline keeps what the service would read."""
    assert _answer(
        f"Observation?code={LOINC}|2000-8",
        _obs("oid", {"system": LOINC_OID, "code": "2000-8"}),
        _obs("slash", {"system": LOINC + "/", "code": " 2000-8"}),
    ) == ["oid", "slash"]
    condition = _coded("Condition", "c", {"system": ICD10CM, "code": "C50.911"})
    assert _answer(f"Condition?code={ICD10CM}|C50911", condition) == ["c"]


def test_a_resource_without_the_code_element_does_not_match_a_code_search() -> None:
    no_code = {"resourceType": "Observation", "id": "none", "status": "final"}
    text_only = {"resourceType": "Observation", "id": "text", "code": {"text": "calcium"}}
    malformed = {"resourceType": "Observation", "id": "bad", "code": {"coding": "2000-8"}}
    query = f"Observation?patient=p1&code={LOINC}|2000-8"
    assert _answer(query, no_code, text_only, malformed, _obs("ca", CALCIUM)) == ["ca"]
    assert _answer("Observation?patient=p1", no_code, text_only) == ["none", "text"]


def test_medication_code_reads_the_codeable_concept_not_a_reference() -> None:
    coded = {
        "resourceType": "MedicationRequest",
        "id": "coded",
        "medicationCodeableConcept": {"coding": [{"system": "rx", "code": "10324"}]},
    }
    referenced = {
        "resourceType": "MedicationRequest",
        "id": "ref",
        "medicationReference": {"reference": "Medication/m1"},
    }
    assert _answer("MedicationRequest?code=rx|10324", coded, referenced) == ["coded"]


@pytest.mark.parametrize(
    "params",
    [
        "patient=someone-else",
        "subject=Patient/someone-else",
        "category=laboratory",
        "date=ge2030-01-01",
        "code:text=heart",
        "code:not=" + LOINC + "|2000-8",
        "_count=1",
        "_sort=-date",
        "value-quantity=gt100",
    ],
)
def test_parameters_not_evaluated_keep_every_resource(params: str) -> None:
    resources = (
        _obs("ca", CALCIUM),
        _obs("hr", HEART_RATE),
        {"resourceType": "Observation", "id": "x"},
    )
    assert len(_answer(f"Observation?{params}", *resources)) == 3


def test_a_code_search_on_a_type_without_a_known_code_element_keeps_everything() -> None:
    doc = {"resourceType": "DocumentReference", "id": "d", "type": {"coding": [HEART_RATE]}}
    assert _answer(f"DocumentReference?code={LOINC}|2000-8", doc) == ["d"]


def test_status_is_a_token_on_the_status_element() -> None:
    docs = [
        {"resourceType": "DocumentReference", "id": "cur", "status": "current"},
        {"resourceType": "DocumentReference", "id": "old", "status": "superseded"},
        {"resourceType": "DocumentReference", "id": "none"},
    ]
    assert _answer("DocumentReference?patient=p1&status=current", *docs) == ["cur"]
    assert _answer("DocumentReference?status=current,superseded", *docs) == ["cur", "old"]


def test_parameters_combine_with_and() -> None:
    found = _answer(
        f"Observation?code={LOINC}|2000-8&status=final",
        _obs("final", CALCIUM, status="final"),
        _obs("prelim", CALCIUM, status="preliminary"),
        _obs("hr", HEART_RATE, status="final"),
    )
    assert found == ["final"]


MED = {"resourceType": "Medication", "id": "m1", "code": {"text": "tamoxifen"}}
OTHER_MED = {"resourceType": "Medication", "id": "m2", "code": {"text": "unused"}}


def test_include_adds_each_referenced_medication_once_after_the_matches() -> None:
    query = "MedicationRequest?patient=p1&_include=MedicationRequest:medication"
    found = _answer(
        query,
        medication_request("r1", "Medication/m1"),
        medication_request("r2", "urn:uuid:m1"),
        medication_request("r3", "#contained"),
        medication_request("r4", "Medication/absent"),
        MED,
        OTHER_MED,
    )
    assert found == ["r1", "r2", "r3", "r4", "m1"]


def test_without_include_or_for_another_type_no_medication_is_added() -> None:
    order = medication_request("r1", "Medication/m1")
    assert _answer("MedicationRequest?patient=p1", order, MED) == ["r1"]
    statement = {**medication_request("s1", "Medication/m1"), "resourceType": "MedicationStatement"}
    query = "MedicationStatement?patient=p1&_include=MedicationRequest:medication"
    assert _answer(query, statement, MED) == ["s1"]


def test_only_the_matches_bring_their_medications() -> None:
    coded = {
        **medication_request("r1", "Medication/m1"),
        "medicationCodeableConcept": {"coding": [{"system": "rx", "code": "1"}]},
    }
    unmatched = medication_request("r2", "Medication/m2")
    query = "MedicationRequest?code=rx|1&_include=MedicationRequest:medication"
    assert _answer(query, coded, unmatched, MED, OTHER_MED) == ["r1", "m1"]


def test_elements_cut_each_match_to_the_elements_asked_and_tag_it_subsetted() -> None:
    study: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "id": "s1",
        "meta": {"lastUpdated": "2026-01-01T00:00:00Z", "tag": [{"code": "kept"}]},
        "status": "available",
        "started": "2025-05-01",
        "subject": {"reference": "Patient/p1"},
        "series": [{"uid": "1.2.3", "instance": [{"uid": "1.2.3.4"}]}],
    }
    by_type = {"ImagingStudy": [study]}
    (cut,) = answer_query("ImagingStudy?patient=p1&_elements=status,started,subject", by_type)
    assert set(cut) == {"resourceType", "id", "meta", "status", "started", "subject"}
    assert cut["meta"]["lastUpdated"] == "2026-01-01T00:00:00Z"
    assert [tag.get("code") for tag in cut["meta"]["tag"]] == ["kept", "SUBSETTED"]
    assert "series" in study  # the record is not changed
    assert len(study["meta"]["tag"]) == 1
    (whole,) = answer_query("ImagingStudy?patient=p1", by_type)
    assert whole is study


def test_elements_leave_included_medications_whole() -> None:
    query = "MedicationRequest?patient=p1&_include=MedicationRequest:medication&_elements=status"
    order = medication_request("r1", "Medication/m1")
    by_type = {"MedicationRequest": [order], "Medication": [MED]}
    order, medication = answer_query(query, by_type)
    assert set(order) == {"resourceType", "id", "meta", "status"}
    assert medication is MED


@pytest.mark.parametrize(
    ("value", "tokens"),
    [
        ("a|1", [("a", "1")]),
        ("|1", [("", "1")]),
        ("1", [(None, "1")]),
        ("a|", [("a", "")]),
        ("a|1,|2,3", [("a", "1"), ("", "2"), (None, "3")]),
        (r"a\|b|c\,d", [("a|b", "c,d")]),
        ("a|b|c", [("a", "b|c")]),
    ],
)
def test_token_values(value: str, tokens: list[tuple[str | None, str]]) -> None:
    assert token_values(value) == tokens


def test_search_parameters_keep_repeats_and_decode() -> None:
    path, params = search_parameters(
        "MedicationRequest?patient=p%201&_include=A:medication&_include=B:medication"
    )
    assert path == "MedicationRequest"
    assert params == [
        ("patient", "p 1"),
        ("_include", "A:medication"),
        ("_include", "B:medication"),
    ]
    assert search_parameters("Patient/{{context.patientId}}") == (
        "Patient/{{context.patientId}}",
        [],
    )


def test_the_request_builder_narrows_each_key_by_its_query() -> None:
    plan = PrefetchPlan(
        keys=(
            PrefetchKey("patient", "Patient/{{context.patientId}}", "Patient", required=True),
            PrefetchKey(
                "observations",
                f"Observation?patient={{{{context.patientId}}}}&code={LOINC}|2000-8",
                "Observation",
            ),
            PrefetchKey(
                "medicationRequests",
                "MedicationRequest?patient={{context.patientId}}"
                "&_include=MedicationRequest:medication",
                "MedicationRequest",
            ),
        ),
        rule_keys={},
    )
    resources = [
        PATIENT,
        _obs("ca", CALCIUM),
        _obs("hr", HEART_RATE),
        medication_request("r1", "Medication/m1"),
        MED,
        OTHER_MED,
    ]
    body = request_from_resources(resources, plan, hook="patient-view", hook_instance="t")
    observations = body["prefetch"]["observations"]
    assert observations["total"] == 1
    assert [e["resource"]["id"] for e in observations["entry"]] == ["ca"]
    orders = body["prefetch"]["medicationRequests"]["entry"]
    assert [e["resource"]["id"] for e in orders] == ["r1", "m1"]
    assert body["prefetch"]["patient"] == PATIENT


def test_a_service_plan_leaves_out_observations_no_rule_reads(knowledge: Knowledge) -> None:
    service = knowledge.services_for("patient-view")[0]
    resources = [PATIENT, _obs("ca", CALCIUM), _obs("hr", HEART_RATE)]
    body = request_from_resources(
        resources, service.prefetch, hook="patient-view", hook_instance="t"
    )
    assert [e["resource"]["id"] for e in body["prefetch"]["observations"]["entry"]] == ["ca"]
