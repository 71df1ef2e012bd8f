"""The patient education pages: readable, structured, and traced to the source document."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from cds.kb.loader import Knowledge
from cds.kb.schemas import EducationPage

REPO = Path(__file__).resolve().parents[2]
MAX_GRADE = 8.0
# One page per topic of the document (clinical-content issue); more may be added.
TOPICS = (
    "what-is-metastatic-recurrent",
    "symptoms-by-site",
    "when-to-call-your-doctor",
    "tests-and-exams",
    "treatment-options",
    "treating-symptoms",
    "clinical-trials",
    "palliative-and-end-of-life-care",
    "self-care",
    "complementary-therapies",
    "getting-support",
    "body-changes-after-treatment",
)
SLUGS = sorted(path.stem for path in (REPO / "cards" / "education").glob("*.md"))


def _heading_levels(markdown: str) -> list[int]:
    tokens = MarkdownIt("commonmark").parse(markdown)
    return [int(token.tag[1]) for token in tokens if token.type == "heading_open"]


def test_every_topic_of_the_document_has_a_page(knowledge: Knowledge) -> None:
    missing = sorted(set(TOPICS) - set(knowledge.education))
    assert not missing, f"no education page for {missing}"


@pytest.mark.parametrize("slug", SLUGS)
def test_page_reads_at_grade_eight_or_below(
    slug: str, knowledge: Knowledge, fk_grade: Callable[[str], float]
) -> None:
    grade = fk_grade(knowledge.education[slug].body)
    assert grade <= MAX_GRADE, f"{slug}: Flesch-Kincaid grade {grade:.1f} > {MAX_GRADE}"


@pytest.mark.parametrize("slug", SLUGS)
def test_page_has_real_headings_under_its_title(slug: str, knowledge: Knowledge) -> None:
    levels = _heading_levels(knowledge.education[slug].body)
    assert 2 in levels, f"{slug}: no level-2 (##) heading"
    assert 1 not in levels, f"{slug}: the title is the page's only level-1 heading"
    for before, after in zip([1, *levels], levels, strict=False):
        assert after <= before + 1, f"{slug}: heading level jumps from {before} to {after}"


@pytest.mark.parametrize("slug", SLUGS)
def test_page_cites_clinical_sections_of_the_document(slug: str, knowledge: Knowledge) -> None:
    page = knowledge.education[slug]
    clinical = {s.heading for s in knowledge.source.sections if s.clinical}
    assert page.sections, f"{slug}: cites no section"
    not_clinical = [s for s in page.sections if s not in clinical]
    assert not not_clinical, f"{slug}: cites sections with no clinical content {not_clinical}"


def test_the_grade_measure_tells_hard_text_from_easy_text(
    fk_grade: Callable[[str], float],
) -> None:
    easy = "## Rest\n\nRest when you are tired. Ask for help. Call your nurse.\n"
    hard = (
        "## Considerations\n\nComprehensive multidisciplinary evaluation, incorporating "
        "radiological characterisation, histopathological confirmation and individualised "
        "therapeutic stratification, constitutes the fundamental prerequisite preceding "
        "systemic pharmacological intervention.\n"
    )
    assert fk_grade(easy) <= MAX_GRADE < fk_grade(hard)


def test_a_page_without_a_level_two_heading_is_caught() -> None:
    page = EducationPage(slug="x", title="X", summary="x", sections=("Self-Care",), body="Hi.\n")
    assert 2 not in _heading_levels(page.body)
    assert _heading_levels("# Top\n\n### Deep\n") == [1, 3]


# Safety advice the pages must keep (clinical review, issue 15); each goes beyond the source
# document and is marked so in the page's front matter.
SAFETY_CONTENT = {
    "when-to-call-your-doctor": (
        "Call 911 now for these signs",
        ("911", "seizure", "weakness or numbness", "bladder or bowels", "chest", "confusion"),
    ),
    "self-care": ("Fever during chemotherapy", ("100.4°F (38°C)",)),
    "getting-support": ("If you think about hurting yourself", ("988", "911")),
    "clinical-trials": ("Risks to think about", ("side effects", "leave a trial")),
}


@pytest.mark.parametrize("slug", sorted(SAFETY_CONTENT))
def test_safety_section_is_present_and_marked_beyond_the_source(
    slug: str, knowledge: Knowledge
) -> None:
    heading, phrases = SAFETY_CONTENT[slug]
    page = knowledge.education[slug]
    assert f"## {heading}\n" in page.body
    section = page.body.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    for phrase in phrases:
        assert phrase.lower() in section.lower(), f"{slug}: {heading!r} lacks {phrase!r}"
    assert heading in page.beyond_source, f"{slug}: {heading!r} is not marked beyond_source"
    assert any(ch.isdigit() for ch in page.beyond_source[heading]), "cite a guideline and year"


def test_only_metastatic_planning_cards_link_the_end_of_life_page(knowledge: Knowledge) -> None:
    """Pain and symptom cards also fire for local or regional recurrence, which can be cured."""
    linking = {
        r.id
        for r in knowledge.rules.values()
        if "palliative-and-end-of-life-care" in r.card.education
    }
    assert linking <= {"metastatic-without-advance-directive", "metastatic-without-palliative-care"}


def test_the_local_recurrence_card_does_not_link_the_body_image_page(knowledge: Knowledge) -> None:
    rule = knowledge.rules["local-change-after-breast-surgery"]
    assert "body-changes-after-treatment" not in rule.card.education


@pytest.mark.parametrize(
    ("template", "differential"),
    [
        ("dyspnea-cough-evaluation", "pulmonary embolism"),
        ("regional-swelling-evaluation", "deep vein thrombosis"),
    ],
)
def test_symptom_card_names_the_thrombotic_differential(
    template: str, differential: str, knowledge: Knowledge
) -> None:
    """Breathlessness and arm swelling after breast cancer may be a clot, not spread (issue 15)."""
    assert differential in knowledge.templates[template].detail
