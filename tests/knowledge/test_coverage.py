"""`knowledge/COVERAGE.md` is current, and every clinical section of the document is drawn on."""

from __future__ import annotations

from cds.kb.loader import Knowledge
from cds.kb.source_coverage import coverage_gaps, render_coverage
from tests.conftest import REPO

COVERAGE_FILE = REPO / "knowledge" / "COVERAGE.md"


def test_the_committed_coverage_file_is_current(knowledge: Knowledge) -> None:
    assert COVERAGE_FILE.exists(), "run `cds knowledge coverage` and commit knowledge/COVERAGE.md"
    assert COVERAGE_FILE.read_text(encoding="utf-8") == render_coverage(knowledge), (
        "knowledge/COVERAGE.md is out of date: run `cds knowledge coverage`"
    )


def test_every_clinical_section_is_drawn_on(knowledge: Knowledge) -> None:
    gaps = coverage_gaps(knowledge)
    assert not gaps, f"clinical sections with no rule or education page: {gaps}"


def test_every_non_clinical_section_says_why(knowledge: Knowledge) -> None:
    silent = [s.heading for s in knowledge.source.sections if not s.clinical and not s.why_not]
    assert not silent, silent
