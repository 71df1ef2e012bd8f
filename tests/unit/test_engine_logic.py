"""The logic vocabulary: all, any, not, ref, inclusion and exclusion, fact kinds, status filters."""

from __future__ import annotations

from typing import Any

import pytest

from cds.kb.loader import Knowledge
from tests.fhir_resources import ACTIVE
from tests.unit.knowledge_tree import (
    ICD,
    LOINC,
    PATIENT,
    RXNORM,
    SNOMED,
    Tree,
    bone_pain,
    breast_cancer,
    condition,
    fired,
    make_rule,
    observation,
)


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Knowledge:
    return Tree(tmp_path_factory.mktemp("engine-logic")).load()


def _fires(kb: Knowledge, node: dict[str, Any], resources: list[dict[str, Any]], **kw: Any) -> bool:
    return fired(kb, make_rule([node]), resources, **kw) is not None


BC = {"ref": "invasive-breast-cancer"}
PAIN = {"condition": {"valueset": "bone-pain"}}
MET = {"ref": "known-bone-metastasis"}
BONE_MET = condition("met", ICD, "C79.51", "2025-01-01", "Secondary malignant neoplasm of bone")


# --- combinations ------------------------------------------------------------------------------


def test_all_needs_every_part(kb: Knowledge) -> None:
    node = {"all": [BC, PAIN]}
    assert _fires(kb, node, [breast_cancer(), bone_pain("2026-05-01")])
    assert not _fires(kb, node, [breast_cancer()])
    assert not _fires(kb, node, [bone_pain("2026-05-01")])


def test_any_needs_one_part_and_cites_only_the_parts_that_hold(kb: Knowledge) -> None:
    node = {"any": [BC, PAIN]}
    assert not _fires(kb, node, [])
    result = fired(kb, make_rule([node]), [bone_pain("2026-05-01")])
    assert result is not None
    assert [e.resource_id for e in result.evidence] == ["pain"]


def test_not_holds_when_absent_and_says_what_was_missing(kb: Knowledge) -> None:
    rule = make_rule([BC, {"not": MET}])
    result = fired(kb, rule, [breast_cancer()])
    assert result is not None
    assert result.absent == ("No known bone metastasis on record",)
    assert fired(kb, rule, [breast_cancer(), BONE_MET]) is None


def test_not_of_a_combination_is_explained_in_words(kb: Knowledge) -> None:
    rule = make_rule([BC, {"not": {"any": [MET, PAIN]}}])
    result = fired(kb, rule, [breast_cancer()])
    assert result is not None
    assert result.absent == (
        "Not on record: any of (known bone metastasis [known-bone-metastasis]; "
        "a condition in value set bone-pain)",
    )


def test_nested_combinations(kb: Knowledge) -> None:
    node = {"all": [BC, {"any": [PAIN, {"not": {"any": [MET, PAIN]}}]}]}
    assert _fires(kb, node, [breast_cancer()])  # nothing of either: the inner not holds
    assert _fires(kb, node, [breast_cancer(), bone_pain("2026-05-01")])
    assert not _fires(kb, node, [breast_cancer(), BONE_MET])


def test_ref_evaluates_the_definition_and_names_it_in_the_explanation(kb: Knowledge) -> None:
    result = fired(kb, make_rule([BC]), [breast_cancer()])
    assert result is not None
    assert result.evidence[0].label == "invasive breast cancer"


def test_every_inclusion_must_hold(kb: Knowledge) -> None:
    rule = make_rule([BC, PAIN])
    assert fired(kb, rule, [breast_cancer(), bone_pain("2026-05-01")]) is not None
    assert fired(kb, rule, [breast_cancer()]) is None


def test_any_exclusion_stops_the_rule(kb: Knowledge) -> None:
    rule = make_rule([BC, PAIN], [MET, {"patient": {"sex": ["male"]}}])
    resources = [breast_cancer(), bone_pain("2026-05-01")]
    assert fired(kb, rule, resources) is not None
    assert fired(kb, rule, [*resources, BONE_MET]) is None
    male = {**PATIENT, "gender": "male"}
    assert fired(kb, rule, resources, patient=male) is None


# --- fact kinds --------------------------------------------------------------------------------


def test_observation_fact(kb: Knowledge) -> None:
    node = {"observation": {"valueset": "calcium"}}
    assert _fires(kb, node, [observation("ca", "17861-6", "2026-05-01")])
    assert not _fires(kb, node, [observation("ca", "2000-8", "2026-05-01")])


def _med(rtype: str, rid: str, status: str, code: str = "10324", **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": rtype,
        "id": rid,
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code}]},
    }
    resource.update(extra)
    return resource


@pytest.mark.parametrize(
    "rtype", ["MedicationRequest", "MedicationStatement", "MedicationAdministration"]
)
def test_medication_fact_reads_all_three_medication_resources(kb: Knowledge, rtype: str) -> None:
    node = {"medication": {"valueset": "tamoxifen"}}
    status = "completed"
    assert _fires(kb, node, [_med(rtype, "m1", status)])
    assert not _fires(kb, node, [_med(rtype, "m1", status, code="11289")])


def test_medication_by_reference_to_a_medication_resource_or_a_contained_one(
    kb: Knowledge,
) -> None:
    node = {"medication": {"valueset": "tamoxifen"}}
    medication = {
        "resourceType": "Medication",
        "id": "tam",
        "code": {"coding": [{"system": RXNORM, "code": "198240"}]},
    }
    by_reference = {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationReference": {"reference": "Medication/tam"},
    }
    assert _fires(kb, node, [medication, by_reference])
    assert not _fires(kb, node, [by_reference])  # the Medication is not in the record
    contained = {
        **by_reference,
        "contained": [{**medication, "id": "c1"}],
        "medicationReference": {"reference": "#c1"},
    }
    assert _fires(kb, node, [contained])


def test_procedure_fact_counts_completed_and_in_progress_only(kb: Knowledge) -> None:
    node = {"procedure": {"valueset": "er-visit"}}

    def procedure(status: str) -> dict[str, Any]:
        return {
            "resourceType": "Procedure",
            "id": "pr",
            "status": status,
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": SNOMED, "code": "50849002"}]},
            "performedDateTime": "2026-05-01",
        }

    assert _fires(kb, node, [procedure("completed")])
    assert _fires(kb, node, [procedure("in-progress")])
    for status in ("not-done", "preparation", "entered-in-error", "stopped"):
        assert not _fires(kb, node, [procedure(status)]), status


def _document(**extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": "ad",
        "status": "current",
        "subject": {"reference": "Patient/p1"},
        "type": {"coding": [{"system": LOINC, "code": "42348-3"}]},
        "date": "2024-02-01T10:00:00Z",
    }
    resource.update(extra)
    return resource


def test_document_fact_matches_type_or_category(kb: Knowledge) -> None:
    node = {"document": {"valueset": "advance-directive"}}
    assert _fires(kb, node, [_document()])
    by_category = _document(
        type={"coding": [{"system": LOINC, "code": "11506-3"}]},
        category=[{"coding": [{"system": LOINC, "code": "42348-3"}]}],
    )
    assert _fires(kb, node, [by_category])


def test_document_fact_ignores_superseded_and_entered_in_error(kb: Knowledge) -> None:
    node = {"document": {"valueset": "advance-directive"}}
    assert not _fires(kb, node, [_document(status="superseded")])
    assert not _fires(kb, node, [_document(status="entered-in-error")])
    assert not _fires(kb, node, [_document(docStatus="entered-in-error")])


def test_research_subject_fact_needs_an_active_study_status(kb: Knowledge) -> None:
    node: dict[str, Any] = {"research-subject": {}}

    def subject(status: str) -> dict[str, Any]:
        return {
            "resourceType": "ResearchSubject",
            "id": "rs",
            "status": status,
            "individual": {"reference": "Patient/p1"},
            "study": {"reference": "ResearchStudy/s1"},
        }

    assert _fires(kb, node, [subject("on-study")])
    assert _fires(kb, node, [subject("follow-up")])
    assert not _fires(kb, node, [subject("withdrawn")])
    assert not _fires(kb, node, [subject("off-study")])
    other = subject("on-study") | {"individual": {"reference": "Patient/someone-else"}}
    assert not _fires(kb, node, [other])


def test_service_request_fact(kb: Knowledge) -> None:
    node = {"service-request": {"valueset": "bone-scan"}}

    def order(status: str) -> dict[str, Any]:
        return {
            "resourceType": "ServiceRequest",
            "id": "sr",
            "status": status,
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": LOINC, "code": "39818-0"}]},
            "authoredOn": "2026-05-01",
        }

    assert _fires(kb, node, [order("active")])
    assert _fires(kb, node, [order("completed")])
    assert not _fires(kb, node, [order("revoked")])
    assert not _fires(kb, node, [order("entered-in-error")])


def test_draft_order_fact_reads_the_draft_orders_only(kb: Knowledge) -> None:
    node = {"draft-order": {"valueset": "tamoxifen"}}
    draft = _med("MedicationRequest", "d1", "draft", code="198240", intent="proposal")
    assert _fires(kb, node, [], draft_orders=[draft])
    # the same order already in the record is a medication fact, not a draft order
    assert not _fires(kb, node, [draft])


def test_patient_facts(kb: Knowledge) -> None:
    def with_patient(query: dict[str, Any], **patient: Any) -> bool:
        return _fires(kb, {"patient": query}, [], patient={**PATIENT, **patient})

    # PATIENT was born 1960-06-15; NOW is 2026-06-01: 65 years old
    assert with_patient({"age_at_least": 65})
    assert not with_patient({"age_at_least": 66})
    assert with_patient({"age_below": 66})
    assert not with_patient({"age_below": 65})
    assert with_patient({"age_at_least": 66}, birthDate="1960-06-01")  # birthday today
    assert not with_patient({"age_at_least": 0}, birthDate=None)  # unknown age: no
    assert with_patient({"sex": ["female"]})
    assert with_patient({"sex": ["female", "male"]}, gender="male")
    assert not with_patient({"sex": ["female"]}, gender="male")
    assert not with_patient({"sex": ["female"]}, gender=None)
    assert with_patient({"deceased": False})


# --- status filters ----------------------------------------------------------------------------


def _verification(code: str) -> dict[str, Any]:
    return {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": code}
        ]
    }


def _clinical(code: str) -> dict[str, Any]:
    return {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": code}
        ]
    }


@pytest.mark.parametrize("verification", ["refuted", "entered-in-error"])
def test_refuted_and_entered_in_error_conditions_never_count(
    kb: Knowledge, verification: str
) -> None:
    pain = bone_pain("2026-05-01", verificationStatus=_verification(verification))
    for status in (None, "any", "active"):
        query: dict[str, Any] = {"valueset": "bone-pain"}
        if status:
            query["status"] = status
        assert not _fires(kb, {"condition": query}, [pain]), (verification, status)
    assert _fires(
        kb, PAIN, [bone_pain("2026-05-01", verificationStatus=_verification("confirmed"))]
    )


@pytest.mark.parametrize(
    ("clinical", "active"),
    [
        ("active", True),
        ("recurrence", True),
        ("relapse", True),
        ("inactive", False),
        ("remission", False),
        ("resolved", False),
    ],
)
def test_active_status_filter_on_conditions(kb: Knowledge, clinical: str, active: bool) -> None:
    pain = bone_pain("2026-05-01", clinicalStatus=_clinical(clinical))
    node = {"condition": {"valueset": "bone-pain", "status": "active"}}
    assert _fires(kb, node, [pain]) is active
    assert _fires(kb, PAIN, [pain])  # without a status filter, history counts too


def test_condition_without_clinical_status_is_active_unless_abated(kb: Knowledge) -> None:
    node = {"condition": {"valueset": "bone-pain", "status": "active"}}
    assert _fires(kb, node, [bone_pain("2026-05-01")])
    assert not _fires(kb, node, [bone_pain("2026-05-01", abatementDateTime="2026-05-10")])
    assert _fires(kb, node, [bone_pain("2026-05-01", clinicalStatus=ACTIVE)])


@pytest.mark.parametrize(
    ("status", "counts"),
    [
        ("final", True),
        ("amended", True),
        ("corrected", True),
        ("preliminary", False),
        ("registered", False),
        ("cancelled", False),
        ("entered-in-error", False),
        ("unknown", False),
    ],
)
def test_observations_count_only_when_final_amended_or_corrected(
    kb: Knowledge, status: str, counts: bool
) -> None:
    node = {"observation": {"valueset": "calcium"}}
    assert _fires(kb, node, [observation("ca", "17861-6", "2026-05-01", status=status)]) is counts


@pytest.mark.parametrize(
    ("rtype", "status", "any_status", "current"),
    [
        ("MedicationRequest", "active", True, True),
        ("MedicationRequest", "on-hold", True, True),
        ("MedicationRequest", "completed", True, False),
        ("MedicationRequest", "stopped", True, False),
        ("MedicationRequest", "cancelled", False, False),
        ("MedicationRequest", "entered-in-error", False, False),
        ("MedicationRequest", "draft", False, False),
        ("MedicationStatement", "active", True, True),
        ("MedicationStatement", "intended", True, True),
        ("MedicationStatement", "not-taken", False, False),
        ("MedicationStatement", "completed", True, False),
        ("MedicationAdministration", "in-progress", True, True),
        ("MedicationAdministration", "completed", True, False),
        ("MedicationAdministration", "not-done", False, False),
    ],
)
def test_medication_status_filters(
    kb: Knowledge, rtype: str, status: str, any_status: bool, current: bool
) -> None:
    med = _med(rtype, "m1", status)
    assert _fires(kb, {"medication": {"valueset": "tamoxifen"}}, [med]) is any_status
    for filt in ("current", "active"):
        query = {"valueset": "tamoxifen", "status": filt}
        assert _fires(kb, {"medication": query}, [med]) is current


def test_resources_of_another_patient_are_ignored(kb: Knowledge) -> None:
    other = bone_pain("2026-05-01") | {"subject": {"reference": "Patient/other"}}
    assert not _fires(kb, PAIN, [other])
    by_uuid = bone_pain("2026-05-01") | {"subject": {"reference": "urn:uuid:p1"}}
    assert _fires(kb, PAIN, [by_uuid])


def test_unavailable_and_suppressed_rules_are_reported_not_run(kb: Knowledge) -> None:
    from cds.engine.evaluate import evaluate
    from tests.unit.knowledge_tree import record_of

    rule = make_rule([BC])
    record = record_of(kb, [breast_cancer()])
    result = evaluate(kb, [rule], record, unavailable={rule.id: "needs conditions"})
    assert result.fired == []
    assert result.not_evaluated == {rule.id: "needs conditions"}
    result = evaluate(kb, [rule], record, suppressed={rule.id})
    assert result.fired == []
    assert "already addressed" in result.not_evaluated[rule.id]


def test_knowledge_tree_fixture_is_the_one_under_test(kb: Knowledge) -> None:
    # guards the helper: a rule that cannot fire in this tree would make the tests above vacuous
    assert set(kb.rules) == {"test-rule"}
    assert fired(kb, kb.rules["test-rule"], [breast_cancer(), bone_pain("2026-05-01")])
