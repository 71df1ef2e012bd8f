"""No text of the product shares a run of 10 or more consecutive words with the source document."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.content.originality import (
    MIN_RUN,
    SourceIndex,
    Text,
    find_shared_runs,
    repository_texts,
    texts_of_file,
    words_of,
)

REPO = Path(__file__).resolve().parents[2]
SOURCE_DOCUMENT = Path("source") / "metastatic-recurrent-breast-cancer.txt"
CONTENT_FOLDERS = (
    "cards/templates/",
    "cards/education/",
    "knowledge/rules/",
    "knowledge/valuesets/",
)

# Invented words, so these tests copy nothing from anywhere.
DOCUMENT = (
    "Alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima. "
    "Mike november oscar papa quebec romeo sierra tango uniform victor whiskey."
)


@pytest.mark.slow  # a long property or fuzz run: `make test`, not `make check`
@pytest.mark.shared
def test_no_product_text_shares_ten_words_with_the_source_document(shared_dir: Path) -> None:
    index = SourceIndex((shared_dir / SOURCE_DOCUMENT).read_text(encoding="utf-8"))
    texts = list(repository_texts(REPO))
    for folder in CONTENT_FOLDERS:
        assert any(t.origin.startswith(folder) for t in texts), f"the scan missed {folder}"
    shared = find_shared_runs(iter(texts), index)
    assert not shared, "text copied from the source document:\n" + "\n".join(map(str, shared))


@pytest.mark.shared
def test_a_line_of_the_source_document_recased_and_rewrapped_is_caught(shared_dir: Path) -> None:
    document = (shared_dir / SOURCE_DOCUMENT).read_text(encoding="utf-8")
    index = SourceIndex(document)
    longest = max(document.splitlines(), key=lambda line: len(words_of(line)))
    words = words_of(longest)
    assert len(words) > MIN_RUN
    disguised = "\n".join(w.upper() + ("," if n % 3 == 0 else "") for n, w in enumerate(words))
    assert index.shared_runs(disguised) == [" ".join(words)]


def test_ten_shared_words_are_reported_and_nine_are_not() -> None:
    index = SourceIndex(DOCUMENT)
    assert index.shared_runs(
        "We said: alpha bravo charlie delta echo foxtrot golf hotel india juliet!"
    ) == ["alpha bravo charlie delta echo foxtrot golf hotel india juliet"]
    assert index.shared_runs("alpha bravo charlie delta echo foxtrot golf hotel india, then") == []


def test_case_punctuation_quotes_markup_and_line_breaks_do_not_hide_a_copy() -> None:
    index = SourceIndex("It\u2019s alpha bravo charlie delta echo foxtrot golf hotel india.")
    copy = "**IT'S** Alpha-bravo,\ncharlie (delta) _echo_ foxtrot; golf \u201chotel\u201d india"
    assert index.shared_runs(copy) == [
        "it's alpha bravo charlie delta echo foxtrot golf hotel india"
    ]


def test_a_long_copy_is_reported_once_and_separate_copies_separately() -> None:
    index = SourceIndex(DOCUMENT)
    long_copy = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike"
    assert index.shared_runs(long_copy) == [long_copy]
    two = (
        "alpha bravo charlie delta echo foxtrot golf hotel india juliet and then "
        "oscar papa quebec romeo sierra tango uniform victor whiskey and mike november"
    )
    # The second copy, from "mike" to "whiskey", is split by the inserted words; the part
    # from "oscar" to "whiskey" is nine words and so is not reported.
    assert index.shared_runs(two) == [
        "alpha bravo charlie delta echo foxtrot golf hotel india juliet"
    ]


def test_every_string_of_a_rule_file_is_scanned_with_its_field(tmp_path: Path) -> None:
    rule = tmp_path / "knowledge" / "rules" / "some-rule.yaml"
    rule.parent.mkdir(parents=True)
    rule.write_text(
        "title: A title\n"
        "rationale: A rationale\n"
        "source: {summary: A summary}\n"
        "known_gaps: [A gap]\n"
        "suggestions:\n"
        "  - {label: A label, description: A description, resource: {code: {text: A code}}}\n",
        encoding="utf-8",
    )
    fields = {t.origin: t.text for t in texts_of_file(rule, "rule.yaml")}
    assert fields == {
        "rule.yaml: title": "A title",
        "rule.yaml: rationale": "A rationale",
        "rule.yaml: source.summary": "A summary",
        "rule.yaml: known_gaps.0": "A gap",
        "rule.yaml: suggestions.0.label": "A label",
        "rule.yaml: suggestions.0.description": "A description",
        "rule.yaml: suggestions.0.resource.code.text": "A code",
    }


def test_a_markdown_file_gives_its_front_matter_and_its_body(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("---\ntitle: T\nsections: [S]\n---\n## Head\n\nBody | cell\n", encoding="utf-8")
    assert list(texts_of_file(page, "page.md")) == [
        Text("page.md: title", "T"),
        Text("page.md: sections.0", "S"),
        Text("page.md: body", "## Head\n\nBody "),
        Text("page.md: body cell 1", " cell\n"),
    ]


def test_files_added_later_are_found_by_the_globs(tmp_path: Path) -> None:
    later = tmp_path / "cards" / "templates" / "added-later.yaml"
    later.parent.mkdir(parents=True)
    later.write_text(
        "summary: x\ndetail: alpha bravo charlie delta echo foxtrot golf hotel india juliet\n",
        encoding="utf-8",
    )
    shared = find_shared_runs(repository_texts(tmp_path), SourceIndex(DOCUMENT))
    assert [str(s) for s in shared] == [
        "cards/templates/added-later.yaml: detail: shares 10 words: "
        "'alpha bravo charlie delta echo foxtrot golf hotel india juliet'"
    ]
