"""`cds knowledge coverage`: every heading, what draws on it, and why when nothing does."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.cli import main
from cds.kb.source_coverage import coverage_gaps, render_coverage, section_coverage
from tests.unit.knowledge_tree import Tree, rule_data

PAGE = """---
title: When to call
summary: Signs to report.
sections: [When to Call a Doctor, "Treatment Overview > Medicines"]
---
# When to call
"""


def _tree(tmp_path: Path) -> Tree:
    tree = Tree(tmp_path)
    tree.education["when-to-call"] = PAGE
    draft = rule_data("draft-rule", status="draft")
    draft["source"] = {**draft["source"], "section": "Exams and Tests"}
    retired = rule_data("retired-rule", status="retired")
    retired["source"] = {**retired["source"], "section": "Self-Care"}
    tree.rules.update({"draft-rule": draft, "retired-rule": retired})
    return tree


def test_every_heading_in_document_order(tmp_path: Path) -> None:
    knowledge = _tree(tmp_path).load()
    rows = section_coverage(knowledge)
    assert [r.heading for r in rows] == [s.heading for s in knowledge.source.sections]


def test_rules_and_pages_are_listed_under_the_sections_they_cite(tmp_path: Path) -> None:
    rows = {r.heading: r for r in section_coverage(_tree(tmp_path).load())}
    when = rows["When to Call a Doctor"]
    assert when.rules == ("test-rule",)
    assert when.pages == ("when-to-call",)
    assert when.status == "covered"
    assert rows["Treatment Overview > Medicines"].pages == ("when-to-call",)
    assert rows["Exams and Tests"].rules == ("draft-rule (draft)",)
    assert rows["Self-Care"].rules == ()  # retired rules do not count
    assert rows["Self-Care"].status == "gap"


def test_a_parent_heading_is_covered_through_its_subsections(tmp_path: Path) -> None:
    rows = {r.heading: r for r in section_coverage(_tree(tmp_path).load())}
    assert rows["Treatment Overview"].status == "subsections"
    assert rows["Treatment Overview"].reason == "covered through its subsections"
    assert rows["Condition Basics"].status == "gap"


def test_non_clinical_sections_say_why(tmp_path: Path) -> None:
    rows = {r.heading: r for r in section_coverage(_tree(tmp_path).load())}
    watch = rows["Watch"]
    assert watch.status == "not-clinical"
    assert watch.reason.startswith("not clinical content: ")
    assert watch.why_not is not None
    assert watch.why_not in watch.reason


def test_gaps_are_flagged_in_the_file(tmp_path: Path) -> None:
    knowledge = _tree(tmp_path).load()
    gaps = coverage_gaps(knowledge)
    assert "Self-Care" in gaps
    assert "Watch" not in gaps
    text = render_coverage(knowledge)
    assert "| Self-Care | — | — | GAP: clinical section with no rule or education page yet |" in (
        text
    )
    assert "## Gaps" in text
    assert "| When to Call a Doctor | `test-rule` | `when-to-call` | covered |" in text
    assert render_coverage(knowledge) == text  # deterministic


def test_the_command_writes_and_checks_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = _tree(tmp_path).write()
    monkeypatch.setenv("CDS_KNOWLEDGE_DIR", str(tree.knowledge_dir))
    monkeypatch.setenv("CDS_CARDS_DIR", str(tree.cards_dir))
    output = tree.knowledge_dir / "COVERAGE.md"
    assert main(["knowledge", "coverage", "--check"]) == 1  # not written yet
    assert main(["knowledge", "coverage"]) == 0
    assert "gap: Self-Care" in capsys.readouterr().out
    assert output.read_text(encoding="utf-8").startswith("# Coverage of the source document")
    assert main(["knowledge", "coverage", "--check"]) == 0
    output.write_text(output.read_text(encoding="utf-8") + "edited by hand\n", encoding="utf-8")
    assert main(["knowledge", "coverage", "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
