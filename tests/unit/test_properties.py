"""Property-based tests: arbitrary FHIR-shaped input never breaks evaluation or prefetch."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds.call.prefetch import render_template, split_prefetch_value
from cds.call.request_builder import request_from_resources
from cds.call.service_call import run_offline
from cds.engine.record import PatientRecord
from cds.errors import RequestError
from cds.kb.loader import Knowledge
from cds.protocol.wire import dump_model

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SYSTEMS = [
    "http://snomed.info/sct",
    "http://loinc.org",
    "http://hl7.org/fhir/sid/icd-10-cm",
    "urn:oid:2.16.840.1.113883.6.90",
    "http://www.nlm.nih.gov/research/umls/rxnorm",
    "http://example.org/unknown",
    "",
]
CODES = ["254837009", "C50.911", "C50911", "c50.9", "12584003", "M54.50", "72514-3", "198240", "x"]
DATES = st.one_of(
    st.sampled_from(
        [
            "2026",
            "2026-05",
            "2026-05-20",
            "2026-05-20T10:00:00Z",
            "2026-05-20T10:00:00+14:00",
            "2026-05-20T10:00:00-12:00",
            "2026-05-20T10:00:00.123456789Z",
            "0001-01-01",
            "9999-12-31",
            "not a date",
            "",
        ]
    ),
    st.text(max_size=30),
    st.integers(),
    st.none(),
)
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=50)
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
CODING = st.fixed_dictionaries(
    {},
    optional={
        "system": st.one_of(st.sampled_from(SYSTEMS), JSON_SCALARS),
        "code": st.one_of(st.sampled_from(CODES), JSON_SCALARS),
        "display": st.one_of(st.text(max_size=300), JSON_SCALARS),
    },
)
CONCEPT = st.one_of(
    st.fixed_dictionaries({"coding": st.lists(st.one_of(CODING, JSON), max_size=3)}), JSON
)
RESOURCE_TYPES = st.sampled_from(
    [
        "Patient",
        "Condition",
        "Observation",
        "MedicationRequest",
        "MedicationStatement",
        "MedicationAdministration",
        "Medication",
        "Procedure",
        "DocumentReference",
        "ResearchSubject",
        "ServiceRequest",
        "Encounter",
        "OperationOutcome",
        "Bundle",
        "NotAResource",
    ]
)
RESOURCE = st.fixed_dictionaries(
    {"resourceType": st.one_of(RESOURCE_TYPES, JSON_SCALARS)},
    optional={
        "id": st.one_of(st.text(max_size=20), JSON_SCALARS),
        "code": CONCEPT,
        "category": st.one_of(st.lists(CONCEPT, max_size=2), CONCEPT),
        "type": CONCEPT,
        "medicationCodeableConcept": CONCEPT,
        "medicationReference": JSON,
        "valueCodeableConcept": CONCEPT,
        "valueQuantity": st.one_of(
            st.fixed_dictionaries(
                {"value": st.one_of(st.floats(allow_nan=False), st.integers(), JSON_SCALARS)},
                optional={"unit": JSON_SCALARS, "code": JSON_SCALARS},
            ),
            JSON,
        ),
        "interpretation": st.one_of(st.lists(CONCEPT, max_size=2), JSON),
        "component": st.one_of(st.lists(JSON, max_size=2), JSON),
        "status": st.one_of(
            st.sampled_from(["final", "active", "completed", "entered-in-error", "current"]),
            JSON_SCALARS,
        ),
        "clinicalStatus": CONCEPT,
        "verificationStatus": CONCEPT,
        "subject": st.one_of(
            st.fixed_dictionaries({"reference": st.sampled_from(["Patient/p1", "Patient/p2", 3])}),
            JSON,
        ),
        "onsetDateTime": DATES,
        "recordedDate": DATES,
        "effectiveDateTime": DATES,
        "effectivePeriod": JSON,
        "performedDateTime": DATES,
        "authoredOn": DATES,
        "birthDate": DATES,
        "deceasedBoolean": JSON_SCALARS,
        "deceasedDateTime": DATES,
        "gender": JSON_SCALARS,
        "extension": JSON,
    },
)


def _run(knowledge: Knowledge, body: dict[str, Any], hook: str) -> dict[str, Any] | int:
    service = knowledge.services_for(hook)[0]
    try:
        result = run_offline(service, body, knowledge=knowledge, now=NOW)
    except RequestError as exc:
        return exc.status
    cards = dump_model(result.response)["cards"]
    for card in cards:
        card.pop("uuid")
        for suggestion in card.get("suggestions", []):
            suggestion.pop("uuid")
    return {"cards": cards}


@pytest.mark.slow  # a long property or fuzz run: `make test`, not `make check`
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    resources=st.lists(RESOURCE, max_size=12),
    hook=st.sampled_from(["patient-view", "encounter-start", "encounter-discharge"]),
)
def test_arbitrary_resources_never_break_evaluation(
    knowledge: Knowledge, resources: list[dict[str, Any]], hook: str
) -> None:
    resources = [{"resourceType": "Patient", "id": "p1"}, *resources]
    plan = knowledge.services_for(hook)[0].prefetch
    body = request_from_resources(resources, plan, hook=hook, hook_instance="prop")
    first = _run(knowledge, body, hook)
    assert first == _run(knowledge, body, hook), "evaluation must be deterministic"


@pytest.mark.slow  # a long property or fuzz run: `make test`, not `make check`
@settings(max_examples=150, deadline=None)
@given(resources=st.lists(st.one_of(RESOURCE, JSON), max_size=12))
def test_record_building_never_raises(resources: list[Any]) -> None:
    record = PatientRecord.build(resources, now=NOW, patient_id="p1", draft_orders=resources)
    # Each entry is read twice (as a record entry and as a draft order); an entry that is not a
    # resource is skipped and counted both times, and nothing is counted more than once per read.
    malformed = sum(
        not isinstance(r, dict) or not isinstance(r.get("resourceType"), str) for r in resources
    )
    assert 2 * malformed <= record.skipped <= 2 * len(resources)
    _ = (record.deceased, record.sex, record.age_years)


@settings(max_examples=200, deadline=None)
@given(value=JSON)
def test_any_prefetch_value_is_classified(value: Any) -> None:
    kind, resources, next_url = split_prefetch_value(value)
    assert kind in ("data", "null", "outcome")
    assert all(isinstance(r, dict) for r in resources)
    assert next_url is None or isinstance(next_url, str)


@settings(max_examples=200, deadline=None)
@given(
    template=st.text(max_size=80), context=st.dictionaries(st.text(max_size=10), JSON, max_size=5)
)
def test_any_template_and_context_render_or_report_missing(
    template: str, context: dict[str, Any]
) -> None:
    rendered = render_template(template, context)
    assert rendered is None or isinstance(rendered, str)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    depth=st.integers(min_value=50, max_value=400),
    text=st.text(min_size=0, max_size=5).map(lambda s: s * 20000),
)
def test_deep_nesting_and_huge_strings_are_survived(
    knowledge: Knowledge, depth: int, text: str
) -> None:
    nested: Any = text
    for _ in range(depth):
        nested = {"a": [nested]}
    resources = [
        {"resourceType": "Patient", "id": "p1"},
        {
            "resourceType": "Condition",
            "id": text[:50],
            "code": {"coding": [{"code": text}]},
            "note": nested,
        },
    ]
    plan = knowledge.services_for("patient-view")[0].prefetch
    body = request_from_resources(resources, plan, hook="patient-view", hook_instance="deep")
    assert _run(knowledge, body, "patient-view") == {"cards": []}
