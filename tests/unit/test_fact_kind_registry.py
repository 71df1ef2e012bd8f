"""Adding a fact kind is one registry entry plus its record extraction.

A kind no shipped rule uses (a relative's history, FHIR ``FamilyMemberHistory``) is registered
here with nothing else changed, and a rule that asks about it loads, fires on the record, is
in the service's prefetch plan, and reads in words.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from cds.engine import record as record_module
from cds.engine import statuses
from cds.engine.evaluate import evaluate
from cds.engine.record import PatientRecord, Reader, register_reader
from cds.errors import KnowledgeError
from cds.kb import fact_kinds
from cds.kb.fact_kinds import FactKind, PrefetchQuery, StatusRow
from cds.kb.loader import Knowledge
from cds.kb.logic_text import describe_rule
from cds.kb.review import content_hash
from cds.web.logic_words import valuesets_of_rule
from tests.conftest import shipped_knowledge
from tests.unit.knowledge_tree import NOW, PATIENT, PATIENT_ID, SNOMED, Tree, rule_data

KIND = "family-history"


def _relatives_conditions(
    resource: dict[str, Any], medications: Mapping[str, dict[str, Any]]
) -> list[Any]:
    """FamilyMemberHistory.condition[].code: what the relative had."""
    conditions = resource.get("condition")
    return [c.get("code") for c in conditions if isinstance(c, dict)] if conditions else []


@pytest.fixture
def family_history() -> Iterator[FactKind]:
    kind = fact_kinds.register(
        FactKind(
            KIND,
            ("FamilyMemberHistory",),
            "a relative's history",
            {"FamilyMemberHistory": ("condition.code",)},
            {"FamilyMemberHistory": (("date",),)},
            statuses=(
                StatusRow(
                    KIND,
                    "FamilyMemberHistory",
                    "status",
                    "any",
                    frozenset({"completed", "partial", "health-unknown"}),
                    False,
                    "a history taken (not entered-in-error)",
                ),
            ),
            prefetch=(PrefetchQuery("familyHistories", "FamilyMemberHistory"),),
        )
    )
    register_reader(KIND, Reader(_relatives_conditions))
    try:
        yield kind
    finally:
        record_module.READERS.pop(KIND, None)
        fact_kinds.unregister(KIND)


@pytest.fixture
def knowledge(tmp_path: Path, family_history: FactKind) -> Knowledge:
    tree = Tree(tmp_path)
    logic = {
        "inclusion": [{KIND: {"valueset": "breast-cancer", "within": "P1Y"}}],
        "exclusion": [],
    }
    tree.rules["test-rule"] = rule_data(logic=logic)
    return tree.load()


def _history(status: str = "completed", date: str = "2026-03-01") -> dict[str, Any]:
    return {
        "resourceType": "FamilyMemberHistory",
        "id": "fmh",
        "status": status,
        "patient": {"reference": f"Patient/{PATIENT_ID}"},
        "date": date,
        "relationship": {"text": "mother"},
        "condition": [
            {"code": {"coding": [{"system": SNOMED, "code": "254837009", "display": "BC"}]}}
        ],
    }


def _fires(knowledge: Knowledge, resource: dict[str, Any]) -> list[str]:
    record = PatientRecord.build(
        [PATIENT, resource],
        now=NOW,
        patient_id=PATIENT_ID,
        index=knowledge.code_index,
        kinds_read_whole=knowledge.kinds_read_whole,
    )
    result = evaluate(knowledge, knowledge.services["test-service"].rules, record)
    return [f"{e.resource_type}/{e.resource_id}" for f in result.fired for e in f.evidence]


def test_a_rule_on_a_new_kind_fires_by_its_code_date_and_status(knowledge: Knowledge) -> None:
    assert _fires(knowledge, _history()) == ["FamilyMemberHistory/fmh"]
    assert _fires(knowledge, _history(date="2024-01-01")) == []  # the date path is the kind's
    assert _fires(knowledge, _history(status="entered-in-error")) == []  # and so is the status


def test_a_new_kind_is_in_the_prefetch_plan(knowledge: Knowledge) -> None:
    plan = knowledge.services["test-service"].prefetch
    assert (
        plan.templates()["familyHistories"] == "FamilyMemberHistory?patient={{context.patientId}}"
    )
    assert "familyHistories" in plan.rule_keys["test-rule"]


def test_a_new_kind_reads_in_words(knowledge: Knowledge) -> None:
    rule = knowledge.rules["test-rule"]
    text = describe_rule(rule, knowledge.definition_docs)
    assert "a relative's history in value set breast-cancer, dated in the last 1 year" in text
    assert valuesets_of_rule(knowledge, rule) == ["breast-cancer"]
    assert any(row.kind == KIND for row in statuses.table())


def test_without_its_registry_entry_the_kind_is_not_a_fact(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.rules["test-rule"] = rule_data(
        logic={"inclusion": [{KIND: {"valueset": "breast-cancer"}}], "exclusion": []}
    )
    with pytest.raises(KnowledgeError, match="neither a logic operator nor a fact kind"):
        tree.load()


def test_registering_a_kind_leaves_every_shipped_rule_reviewed_as_it_was() -> None:
    """The review hash leaves unset kinds out: a new kind does not un-review existing rules."""
    shipped = shipped_knowledge()
    before = {rule.id: content_hash(shipped, rule) for rule in shipped.rules.values()}
    fact_kinds.register(FactKind(KIND, ("FamilyMemberHistory",), "a relative's history", {}, {}))
    try:
        after = {rule.id: content_hash(shipped, rule) for rule in shipped.rules.values()}
    finally:
        fact_kinds.unregister(KIND)
    assert after == before
