"""Honest absence: entries the service cannot classify never let a rule claim "no X on record"
wrongly. Their words may hold such a claim back, and otherwise the card names them; they never
make a fact hold."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cds.call.rule_cases import case_resources
from cds.engine.evaluate import evaluate
from cds.engine.record import PatientRecord
from cds.kb.loader import Knowledge
from tests.unit.example_records import indexed_record

NOW = datetime(2026, 6, 1, tzinfo=UTC)
RULE = "hr-positive-metastatic-without-endocrine-therapy"


def _absent_lines(knowledge: Knowledge, case_name: str, rule: str = RULE) -> tuple[str, ...] | None:
    case = next(c for c in knowledge.cases[rule] if c.name == case_name)
    record = indexed_record(knowledge, case_resources(knowledge, case), NOW)
    evaluation = evaluate(knowledge, [knowledge.rules[rule]], record)
    return evaluation.fired[0].absent if evaluation.fired else None


def test_the_card_names_the_entry_it_could_not_read(knowledge: Knowledge) -> None:
    absent = _absent_lines(knowledge, "in-text-only-entry-named-in-the-card")
    assert absent is not None
    line = next(a for a in absent if "could not be read by code" in a)
    assert (
        "1 entry could not be read by code: MedicationStatement/hormone-text "
        "'hormone blocker 1 tab daily'" in line
    )


def test_an_unresolved_reference_is_named_too(knowledge: Knowledge) -> None:
    absent = _absent_lines(knowledge, "in-unreadable-reference-named-in-the-card")
    assert absent is not None
    assert any("MedicationRequest/unresolved 'no text'" in a for a in absent)


def test_an_imaging_study_with_only_a_local_code_is_named(knowledge: Knowledge) -> None:
    rule = "mammogram-overdue-after-breast-cancer"
    absent = _absent_lines(knowledge, "in-imaging-study-local-code-says-something-else", rule)
    assert absent is not None
    assert any("ImagingStudy/local-study 'ct chest w contrast'" in a for a in absent)


def test_an_old_unreadable_entry_is_not_what_a_recent_absence_is_about(
    knowledge: Knowledge,
) -> None:
    """Outside the claim's window an unreadable entry neither holds the claim back nor is named."""
    rule = "mammogram-overdue-after-breast-cancer"
    absent = _absent_lines(knowledge, "in-procedure-text-only-mammogram-too-old", rule)
    assert absent is not None
    assert not any("could not be read" in a for a in absent)


def test_without_unclassified_entries_the_claim_is_plain(knowledge: Knowledge) -> None:
    absent = _absent_lines(knowledge, "in-er-positive-no-therapy")
    assert absent is not None
    assert not any("could not be read" in a for a in absent)


def test_text_never_makes_a_fact_hold(knowledge: Knowledge) -> None:
    """A text-only tamoxifen order at order-sign fires no endocrine-order rule."""
    rule = knowledge.rules["endocrine-order-with-negative-er-pr"]
    case = next(c for c in knowledge.cases[rule.id] if c.name.startswith("in-"))
    resources: list[dict[str, Any]] = case_resources(knowledge, case)
    draft = {
        "resourceType": "MedicationRequest",
        "id": "text-only",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"text": "tamoxifen 20 mg tablet"},
    }
    record = PatientRecord.build(
        resources,
        now=NOW,
        draft_orders=[draft],
        ingredients=knowledge.ingredients,
        index=knowledge.code_index,
    )
    assert evaluate(knowledge, [rule], record).fired == []
