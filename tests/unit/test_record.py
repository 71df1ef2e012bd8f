"""The patient record: indexing, the Patient resource, and defensive reading of bad resources."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds.engine.evaluate import evaluate
from cds.engine.record import PatientRecord
from cds.kb.loader import Knowledge
from cds.kb.schemas import Rule
from tests.unit.knowledge_tree import (
    ICD,
    NOW,
    PATIENT,
    SNOMED,
    Tree,
    bone_pain,
    breast_cancer,
    condition,
    make_rule,
    observation,
    quantity,
    record_of,
    rule_data,
)


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Knowledge:
    return Tree(tmp_path_factory.mktemp("record")).load()


def test_resources_are_indexed_by_kind(kb: Knowledge) -> None:
    med = {
        "resourceType": "MedicationStatement",
        "id": "ms",
        "status": "active",
        "medicationCodeableConcept": {"coding": [{"system": SNOMED, "code": "1"}]},
    }
    encounter = {"resourceType": "Encounter", "id": "e1"}
    record = record_of(
        kb, [breast_cancer(), observation("o", "17861-6", "2026-01-01"), med, encounter]
    )
    assert [i.id for i in record.all_of("condition")] == ["bc"]
    assert [i.id for i in record.all_of("observation")] == ["o"]
    assert [i.rtype for i in record.all_of("medication")] == ["MedicationStatement"]
    assert record.all_of("procedure") == []
    assert record.skipped == 0  # an Encounter is not read, and not an error either


def test_find_returns_record_order_once_each_and_is_cached(kb: Knowledge) -> None:
    resources = [
        condition("b", ICD, "M54.9", "2026-01-01"),
        condition("a", SNOMED, "12584003", "2026-01-02"),
        condition("c", ICD, "M54.50", "2026-01-03"),
    ]
    resources[0]["code"]["coding"].append({"system": SNOMED, "code": "12584003"})  # two hits
    record = record_of(kb, resources)
    found = record.find("condition", kb.valuesets["bone-pain"])
    assert [i.id for i in found] == ["b", "a", "c"]
    assert record.find("condition", kb.valuesets["bone-pain"]) is found
    assert record.find("observation", kb.valuesets["bone-pain"]) == []


def test_item_display_and_reference(kb: Knowledge) -> None:
    record = record_of(kb, [breast_cancer()])
    item = record.all_of("condition")[0]
    assert item.display() == "Malignant neoplasm of breast"
    assert item.ref() == "Condition/bc"
    assert item.date == datetime(2019, 3, 4, tzinfo=UTC)
    text_only = condition("t", SNOMED, "12584003", "2026-01-01")
    text_only["code"] = {"coding": [{"system": SNOMED, "code": "12584003"}], "text": "Bone ache"}
    assert record_of(kb, [text_only]).all_of("condition")[0].display() == "Bone ache"


def test_the_patient_is_the_one_named_in_the_context() -> None:
    other = {**PATIENT, "id": "other", "gender": "male"}
    record = PatientRecord.build([other, PATIENT], now=NOW, patient_id="p1")
    assert record.patient is not None
    assert record.patient["id"] == "p1"
    assert record.sex == "female"
    assert PatientRecord.build([], now=NOW, patient_id="p1").patient is None


@pytest.mark.parametrize(
    ("patient", "deceased"),
    [
        ({}, False),
        ({"deceasedBoolean": False}, False),
        ({"deceasedBoolean": True}, True),
        ({"deceasedDateTime": "2025-12-01"}, True),
        ({"deceasedDateTime": "2025"}, True),
        ({"deceasedDateTime": "not a date"}, False),
        ({"deceasedBoolean": "true"}, False),
    ],
)
def test_deceased(patient: dict[str, Any], deceased: bool) -> None:
    record = PatientRecord.build([{**PATIENT, **patient}], now=NOW, patient_id="p1")
    assert record.deceased is deceased


@pytest.mark.parametrize(
    ("birth", "age"),
    [
        ("1960-06-15", 65),
        ("1960-06-01", 66),
        ("1960-06-02", 65),
        ("1960", 66),
        ("1960-07", 65),
        (None, None),
        ("garbage", None),
        (1960, None),
    ],
)
def test_age_in_whole_years(birth: Any, age: int | None) -> None:
    record = PatientRecord.build([{**PATIENT, "birthDate": birth}], now=NOW, patient_id="p1")
    assert record.age_years == age


MALFORMED: list[Any] = [
    None,
    "Condition",
    42,
    ["resourceType", "Condition"],
    {"resourceType": ["Condition"]},
    {"resourceType": None},
    {"resourceType": "Condition", "code": {"coding": 5}},
    {"resourceType": "Condition", "code": {"coding": "12584003"}},
    {"resourceType": "Condition", "code": "12584003"},
    {"resourceType": "Condition", "code": {"coding": [None, 1, "x", {"code": 5}]}},
    {"resourceType": "Condition", "code": {"coding": [{"system": 5, "code": "12584003"}]}},
    {"resourceType": "Condition", "code": {"coding": [{"system": SNOMED, "code": None}]}},
    {"resourceType": "Condition", "subject": "Patient/p1"},
    {"resourceType": "Condition", "subject": {"reference": 7}},
    {"resourceType": "Condition", "onsetDateTime": 2020, "id": 12},
    {"resourceType": "Condition", "clinicalStatus": [], "verificationStatus": "refuted"},
    {"resourceType": "Observation", "status": ["final"], "valueQuantity": "12 mg/dL"},
    {"resourceType": "Observation", "status": "final", "component": 5, "interpretation": {}},
    {"resourceType": "Observation", "status": "final", "valueCodeableConcept": {"coding": 3}},
    {"resourceType": "MedicationRequest", "medicationReference": "Medication/x"},
    {"resourceType": "MedicationRequest", "medicationReference": {"reference": 5}},
    {
        "resourceType": "MedicationRequest",
        "contained": 5,
        "medicationReference": {"reference": "#a"},
    },
    {"resourceType": "DocumentReference", "category": {"coding": []}, "type": 5},
    {"resourceType": "ResearchSubject", "individual": 5, "status": 5},
    {"resourceType": "Medication", "id": ["x"]},
]


def _every_feature_rules() -> list[Rule]:
    """Rules touching every fact kind and value test, to run over malformed records."""
    nodes: list[dict[str, Any]] = [
        {"ref": "invasive-breast-cancer"},
        {"condition": {"valueset": "bone-pain", "status": "active", "within": "P90D"}},
        {"condition": {"valueset": "bone-pain", "after": {"first": "invasive-breast-cancer"}}},
        {
            "observation": {
                "valueset": "her2-result",
                "latest": True,
                "value": {"valueset": "negative"},
            }
        },
        {"observation": {"valueset": "calcium", "value": {"gt": 1, "unit": "mg/dL"}}},
        {"observation": {"valueset": "calcium", "interpretation": ["H"]}},
        {"observation": {"valueset": "calcium", "count": {"at_least": 2}}},
        {
            "observation": {
                "valueset": "blood-pressure",
                "component": {"valueset": "systolic", "value": {"gt": 1}},
            }
        },
        {
            "observation": {
                "valueset": "body-weight",
                "trend": {"decrease_percent": 5, "within": "P1Y"},
            }
        },
        {"medication": {"valueset": "tamoxifen", "status": "current"}},
        {"procedure": {"valueset": "er-visit"}},
        {"document": {"valueset": "advance-directive"}},
        {"research-subject": {}},
        {"service-request": {"valueset": "bone-scan"}},
        {"draft-order": {"valueset": "tamoxifen"}},
        {"patient": {"age_at_least": 18, "sex": ["female"]}},
        {"not": {"ref": "known-bone-metastasis"}},
    ]
    return [
        Rule.model_validate(rule_data(f"r{i}", logic={"inclusion": [node]}))
        for i, node in enumerate(nodes)
    ]


def test_malformed_resources_are_skipped_or_ignored_never_fatal(kb: Knowledge) -> None:
    good = [breast_cancer(), bone_pain("2026-05-01")]
    record = PatientRecord.build(
        [PATIENT, *MALFORMED, *good],
        now=NOW,
        patient_id="p1",
        draft_orders=[None, 5, {"resourceType": 3}, {"resourceType": "MedicationRequest"}],
        ingredients=kb.ingredients,
    )
    # non-objects, a resourceType that is not text, and codings that are not lists are counted
    assert record.skipped >= 10
    result = evaluate(kb, _every_feature_rules(), record)
    fired = {f.rule.id for f in result.fired}
    assert {"r0", "r1", "r2", "r16"} <= fired  # the good resources still count
    rule = make_rule([{"ref": "invasive-breast-cancer"}, {"condition": {"valueset": "bone-pain"}}])
    assert evaluate(kb, [rule], record).fired


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.sampled_from(
        [
            "",
            "x",
            "2026-05-01",
            "final",
            "active",
            "12584003",
            "C50.911",
            "#c",
            "Patient/p1",
            "Medication/m",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "code",
                    "coding",
                    "system",
                    "value",
                    "status",
                    "reference",
                    "start",
                    "id",
                    "resourceType",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)
_FIELDS = [
    "id",
    "status",
    "code",
    "subject",
    "onsetDateTime",
    "onsetPeriod",
    "recordedDate",
    "clinicalStatus",
    "verificationStatus",
    "abatementDateTime",
    "effectiveDateTime",
    "valueQuantity",
    "valueCodeableConcept",
    "interpretation",
    "component",
    "medicationCodeableConcept",
    "medicationReference",
    "contained",
    "category",
    "type",
    "docStatus",
    "individual",
    "authoredOn",
    "performedDateTime",
    "date",
    "period",
]
_RESOURCE = st.builds(
    lambda rtype, fields: {"resourceType": rtype, **fields},
    st.sampled_from(
        [
            "Condition",
            "Observation",
            "MedicationRequest",
            "MedicationStatement",
            "MedicationAdministration",
            "Procedure",
            "DocumentReference",
            "ResearchSubject",
            "ServiceRequest",
            "Medication",
            "Patient",
        ]
    ),
    st.dictionaries(st.sampled_from(_FIELDS), _JSON, max_size=6),
)


@pytest.mark.slow  # a long property or fuzz run: `make test`, not `make check`
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(resources=st.lists(_RESOURCE, max_size=6), drafts=st.lists(_RESOURCE, max_size=2))
def test_random_malformed_records_never_crash(
    kb: Knowledge, resources: list[dict[str, Any]], drafts: list[dict[str, Any]]
) -> None:
    record = PatientRecord.build(
        [PATIENT, *resources],
        now=NOW,
        patient_id="p1",
        draft_orders=drafts,
        ingredients=kb.ingredients,
    )
    result = evaluate(kb, _every_feature_rules(), record)
    assert len(result.fired) <= 17


def test_values_from_another_system_or_shape_do_not_match(kb: Knowledge) -> None:
    obs = observation("ca", "17861-6", "2026-05-01", valueQuantity=quantity(12))
    obs["valueQuantity"]["value"] = "12"
    rule = make_rule([{"observation": {"valueset": "calcium", "value": {"gt": 1}}}])
    assert not evaluate(kb, [rule], record_of(kb, [obs])).fired
