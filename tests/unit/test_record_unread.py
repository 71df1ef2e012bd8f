"""A record built with the knowledge's code index leaves out what no rule can ask about, and
every rule answers exactly as it does on the whole record."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cds.engine.evaluate import Evaluation, evaluate
from cds.engine.record import PatientRecord
from cds.kb.loader import Knowledge
from tests.unit.example_records import example_records, indexed_record

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _outcome(evaluation: Evaluation) -> list[tuple[str, tuple[object, ...], tuple[str, ...]]]:
    return [(f.rule.id, f.evidence, f.absent) for f in evaluation.fired]


@pytest.mark.parametrize(
    ("name", "resources"), example_records(NOW.date(), 1500), ids=lambda v: str(v)[:40]
)
def test_rules_answer_alike_on_the_indexed_record(
    knowledge: Knowledge, name: str, resources: list[dict[str, object]]
) -> None:
    whole = PatientRecord.build(resources, now=NOW, ingredients=knowledge.ingredients)
    indexed = indexed_record(knowledge, resources, NOW)
    assert whole.unread == 0
    assert whole.skipped == indexed.skipped
    for service in knowledge.services.values():
        assert _outcome(evaluate(knowledge, service.rules, indexed)) == _outcome(
            evaluate(knowledge, service.rules, whole)
        )
    if name == "large":
        assert indexed.unread > 50  # vital signs and other results no rule reads (albumin is read)


def test_a_kind_read_whole_keeps_every_resource(knowledge: Knowledge) -> None:
    assert "research-subject" in knowledge.kinds_read_whole
    study = {"resourceType": "ResearchSubject", "id": "rs", "status": "on-study"}
    record = PatientRecord.build(
        [study],
        now=NOW,
        index=knowledge.code_index,
        kinds_read_whole=knowledge.kinds_read_whole,
    )
    assert [item.id for item in record.all_of("research-subject")] == ["rs"]
    assert record.unread == 0
