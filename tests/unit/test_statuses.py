"""The status table: the engine reads it, and the doc shows it."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.engine import statuses

DOC = Path(__file__).resolve().parents[2] / "docs" / "record-reading.md"


def test_the_doc_shows_the_table_the_engine_uses() -> None:
    assert statuses.markdown() in DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("value", "counts"),
    [
        ("confirmed", True),
        (None, True),
        ("provisional", False),
        ("differential", False),
        ("unconfirmed", False),
        ("refuted", False),
        ("entered-in-error", False),
    ],
)
def test_known_disease_is_confirmed_or_unstated(value: str | None, counts: bool) -> None:
    row = statuses.row("Condition", "verificationStatus")
    assert statuses.counts(value, row) is counts


def test_a_current_query_falls_back_to_the_any_row() -> None:
    assert statuses.row("Observation", "status", "current").query == "any"
    assert statuses.row("MedicationRequest", "status", "current").codes == {"active", "on-hold"}
    with pytest.raises(KeyError):
        statuses.row("Encounter", "status")


def test_a_status_outside_r4_does_not_count() -> None:
    # STU3's MedicationStatement 'taken' flag and R5's 'recorded' are not R4 statuses
    assert not statuses.counts("recorded", statuses.row("MedicationStatement", "status"))
    assert not statuses.counts("draft", statuses.row("MedicationRequest", "status"))
