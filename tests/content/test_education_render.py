"""cds.web.education: pages rendered to safe HTML, and listed in the document's order."""

from __future__ import annotations

import dataclasses
import re

from cds.kb.loader import Knowledge
from cds.kb.schemas import EducationPage
from cds.web.education import education_index, render_education_html


def _page(
    body: str, *, slug: str = "page", title: str = "Page", section: str = "Self-Care"
) -> EducationPage:
    return EducationPage(slug=slug, title=title, summary="A page.", sections=(section,), body=body)


def test_every_page_renders_its_headings_and_lists(knowledge: Knowledge) -> None:
    for slug, page in knowledge.education.items():
        html = render_education_html(page)
        assert html.count("<h2>") == page.body.count("\n## ") + page.body.startswith("## "), slug
        assert "<h1" not in html, slug
        assert "<p>" in html, slug


def test_raw_html_in_markdown_is_shown_as_text_never_run() -> None:
    html = render_education_html(
        _page("## Hi\n\n<script>alert(1)</script>\n\nText <img src=x onerror=alert(2)> here.\n")
    )
    assert "<script" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_unsafe_links_lose_their_target_and_safe_links_open_safely() -> None:
    html = render_education_html(
        _page(
            "[bad](javascript:alert(1)) and [data](data:text/html,x) and [good](https://example.org/a)"
        )
    )
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs == ["https://example.org/a"]
    assert re.search(r'<a href="https://example.org/a" rel="noopener noreferrer">good</a>', html)


def test_a_level_one_heading_in_a_body_is_not_a_second_title() -> None:
    html = render_education_html(_page("# Not the title\n\n## Part\n\nText.\n"))
    assert "<h1" not in html
    assert "Not the title" in html
    assert "<h2>Part</h2>" in html


def test_the_index_lists_every_page_in_the_order_of_the_document(knowledge: Knowledge) -> None:
    pages = education_index(knowledge)
    assert sorted(p.slug for p in pages) == sorted(knowledge.education)
    position = {s.heading: i for i, s in enumerate(knowledge.source.sections)}
    main_sections = [position[p.sections[0]] for p in pages]
    assert main_sections == sorted(main_sections)
    assert pages[0].slug == "what-is-metastatic-recurrent"
    assert pages[-1].slug == "body-changes-after-treatment"


def test_pages_on_the_same_main_section_are_ordered_by_title(knowledge: Knowledge) -> None:
    pages = {
        "b": _page("## B\n", slug="b", title="Beta", section="Self-Care"),
        "a": _page("## A\n", slug="a", title="Alpha", section="Self-Care"),
        "z": _page("## Z\n", slug="z", title="Zeta", section="Symptoms"),
    }
    trimmed = dataclasses.replace(knowledge, education=pages)
    assert [p.slug for p in education_index(trimmed)] == ["z", "a", "b"]
