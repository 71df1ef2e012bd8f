"""Rule logic compiled to plans when the knowledge loads, and the code index the gates use."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cds.engine.record import PatientRecord
from cds.kb import plans
from cds.kb.code_systems import ICD10CM, SNOMED
from cds.kb.loader import Knowledge
from cds.kb.logic import Node
from cds.kb.plans import FactPlan, RefPlan, compile_rule
from cds.kb.terminology import CodeIndex, CompiledValueSet
from tests.unit.knowledge_tree import make_rule


def _node(data: dict[str, Any]) -> Node:
    return Node.model_validate(data)


DEFINITIONS = {
    "one-fact": _node({"condition": {"valueset": "pain"}}),
    "one-named-fact": _node({"condition": {"valueset": "pain", "label": "named"}}),
    "two-facts": _node({"any": [{"condition": {"valueset": "pain"}}, {"ref": "one-fact"}]}),
}


@pytest.mark.parametrize(
    ("name", "relabel"),
    [("one-fact", "one-fact"), ("one-named-fact", None), ("two-facts", None), ("nowhere", None)],
)
def test_a_ref_to_a_one_fact_definition_is_named_by_the_definition(
    name: str, relabel: str | None
) -> None:
    rule = make_rule([{"ref": name}])
    plan = compile_rule(rule, DEFINITIONS, {}, {"pain": PAIN})
    assert plan.inclusion == (RefPlan(name, relabel),)


def test_every_rule_and_definition_is_compiled_when_the_knowledge_loads(
    knowledge: Knowledge,
) -> None:
    probes = {p.id for group in knowledge.reset_probes.values() for p in group}
    assert probes, "some shipped rule resets its repeat limit on a definition"
    assert set(knowledge.program.rules) == set(knowledge.rules) | probes
    assert set(knowledge.program.definitions) == set(knowledge.definitions)
    for rule_id, plan in knowledge.program.rules.items():
        assert plan.gates == knowledge.rule_gates[rule_id]
        compiled = knowledge.compiled_rules[rule_id]
        assert len(plan.inclusion) == len(compiled.logic.inclusion)


def test_a_fact_plan_has_its_filters_in_order_and_its_label() -> None:
    rule = make_rule(
        [{"observation": {"valueset": "pain", "within": "P1Y", "latest": True, "value": {"gt": 1}}}]
    )
    (fact,) = compile_rule(rule, {}, {}, {"pain": PAIN}).inclusion
    assert isinstance(fact, FactPlan)
    assert [op for op, _ in fact.filters] == [plans.STATUS, plans.WITHIN, plans.LATEST, plans.VALUE]
    assert fact.label == "pain"
    assert fact.coded == ("observation", "pain")


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


def test_repeat_limit_probes_run_on_plans_compiled_at_load(
    knowledge: Knowledge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call's probes are the knowledge's own, so nothing is compiled while a call runs."""
    from cds.engine import evaluate as engine_module

    def refuse(*_: Any) -> None:
        raise AssertionError("compiled during a call")

    monkeypatch.setattr(engine_module, "compile_rule", refuse)
    rule = next(r for r in knowledge.rules.values() if r.repeat_resets_on)
    probes = knowledge.reset_probes_of(rule)
    assert probes
    assert probes == knowledge.reset_probes[rule.id]
    record = PatientRecord.build([], now=datetime(2026, 6, 1, tzinfo=UTC))
    engine_module.evaluate(knowledge, probes, record)
