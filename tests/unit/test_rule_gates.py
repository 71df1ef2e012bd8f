"""Rule gates: the codes a rule cannot fire without, and a call that skips on them answers
exactly as one that walks every rule."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cds.engine.evaluate import evaluate
from cds.kb.loader import Knowledge
from cds.kb.logic import Node
from cds.kb.rule_gates import rule_gates
from tests.unit.example_records import example_records, indexed_record
from tests.unit.knowledge_tree import make_rule

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


DEFINITIONS = {
    "cancer": Node.model_validate({"condition": {"valueset": "breast-cancer"}}),
    "loop": Node.model_validate({"ref": "loop"}),
}


@pytest.mark.parametrize(
    ("inclusion", "expected"),
    [
        ([{"condition": {"valueset": "a"}}], [{("condition", "a")}]),
        (
            [{"ref": "cancer"}, {"observation": {"valueset": "b"}}],
            [{("condition", "breast-cancer")}, {("observation", "b")}],
        ),
        (
            [{"any": [{"condition": {"valueset": "a"}}, {"procedure": {"valueset": "b"}}]}],
            [{("condition", "a"), ("procedure", "b")}],
        ),
        ([{"any": [{"condition": {"valueset": "a"}}, {"patient": {"sex": ["female"]}}]}], []),
        ([{"not": {"condition": {"valueset": "a"}}}], []),
        ([{"research-subject": {}}], []),
        ([{"ref": "loop"}, {"ref": "unknown"}], []),
    ],
)
def test_gates_are_read_off_the_logic(
    inclusion: list[dict[str, Any]], expected: list[set[tuple[str, str]]]
) -> None:
    gates = rule_gates(make_rule(inclusion), DEFINITIONS)
    assert sorted(map(sorted, gates)) == sorted(map(sorted, expected))


@pytest.mark.parametrize(
    ("name", "resources"), example_records(NOW.date(), 800), ids=lambda v: str(v)[:40]
)
def test_skipping_on_gates_changes_no_answer(
    knowledge: Knowledge, name: str, resources: list[dict[str, Any]]
) -> None:
    skipped = 0
    for service in knowledge.services.values():
        record = indexed_record(knowledge, resources, NOW)
        gated = evaluate(knowledge, service.rules, record)
        # Copies are not the knowledge's own rules, so the engine walks each of them whole.
        walked = evaluate(knowledge, [rule.model_copy() for rule in service.rules], record)
        assert [(f.rule.id, f.evidence, f.absent) for f in gated.fired] == [
            (f.rule.id, f.evidence, f.absent) for f in walked.fired
        ]
        skipped += sum(
            1
            for rule in service.rules
            if knowledge.rule_gates[rule.id]
            and not all(
                any(
                    vs in knowledge.code_index.matched_by(*record.code_keys(kind))
                    for kind, vs in gate
                )
                for gate in knowledge.rule_gates[rule.id]
            )
        )
    assert skipped > 0, name  # every example patient lacks some sign some rule asks about
