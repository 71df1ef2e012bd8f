"""Rule logic compiled to closures: once per node, never a stale closure for another node."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cds.engine import evaluate as engine
from cds.engine.record import PatientRecord
from cds.kb.code_systems import ICD10CM, SNOMED
from cds.kb.logic import Node
from cds.kb.terminology import CodeIndex, CompiledValueSet


def _node(data: dict[str, Any]) -> Node:
    return Node.model_validate(data)


@pytest.mark.parametrize(
    ("data", "relabelled"),
    [
        ({"condition": {"valueset": "vs"}}, True),
        ({"condition": {"valueset": "vs", "label": "named"}}, False),
        ({"research-subject": {}}, True),
        ({"ref": "some-definition"}, False),
        ({"all": [{"ref": "a"}, {"ref": "b"}]}, False),
        ({"any": [{"ref": "a"}]}, False),
        ({"not": {"ref": "a"}}, False),
        ({"patient": {"age_at_least": 18}}, False),
    ],
)
def test_each_node_compiles_once(data: dict[str, Any], relabelled: bool) -> None:
    node = _node(data)
    entry = engine._compiled(node)
    assert entry.node is node
    assert entry.relabelled is relabelled
    assert engine._compiled(node) is entry  # compiled once, then reused


def test_a_closure_left_under_a_reused_id_is_not_taken_for_another_node() -> None:
    node = _node({"not": {"ref": "a"}})
    other = _node({"ref": "b"})
    stale = engine._compiled(other)
    engine._COMPILED[id(node)] = stale  # as if ``other`` had held this id
    try:
        entry = engine._compiled(node)
    finally:
        engine._COMPILED.pop(id(node), None)
    assert entry.node is node
    assert entry.step is not stale.step


CANCER = CompiledValueSet(
    id="breast-cancer",
    title="Breast cancer",
    codes=frozenset({(SNOMED, "254837009")}),
    prefixes=frozenset({(ICD10CM, "C50")}),
)
PAIN = CompiledValueSet(id="pain", title="Pain", codes=frozenset({(SNOMED, "22253000")}))


def test_the_code_index_matches_as_value_sets_do() -> None:
    index = CodeIndex.of([CANCER, PAIN])
    assert index.matched_by([(SNOMED, "254837009")], []) == {"breast-cancer"}
    assert index.matched_by([(ICD10CM, "C50")], []) == {"breast-cancer"}  # the family's root
    assert index.matched_by([(ICD10CM, "C50911")], [(ICD10CM, "C50")]) == {"breast-cancer"}
    assert index.matched_by([(SNOMED, "22253000"), (SNOMED, "1")], []) == {"pain"}
    assert index.matched_by([(ICD10CM, "C501")], []) == set()  # a family needs its prefix


@pytest.mark.parametrize(
    "coding",
    [
        {"system": "http://snomed.info/sct", "code": "254837009"},
        {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C50"},
        {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C50.911"},
        {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C501"},
        {"system": "urn:oid:2.16.840.1.113883.6.96", "code": "22253000"},
        {"system": "http://loinc.org", "code": "22253000"},
    ],
)
def test_the_code_index_agrees_with_record_find(coding: dict[str, str]) -> None:
    index = CodeIndex.of([CANCER, PAIN])
    condition = {"resourceType": "Condition", "id": "c", "code": {"coding": [coding]}}
    record = PatientRecord.build([condition], now=datetime(2026, 1, 1, tzinfo=UTC))
    matched = index.matched_by(*record.code_keys("condition"))
    assert matched == {vs.id for vs in (CANCER, PAIN) if record.find("condition", vs)}
