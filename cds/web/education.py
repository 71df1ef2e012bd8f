"""Patient education pages (``cards/education/<slug>.md``) as safe HTML, and their reading order.

A plain module, no web framework: the pages routes build ``/education/...`` on top of it.

- ``render_education_html(page)`` turns a page's markdown body into an HTML fragment that is
  safe to insert as is. Raw HTML in the markdown is never passed through: markdown-it runs with
  ``html`` off (a ``<script>`` comes out as visible text) and nh3 then keeps only the small set
  of tags a patient page uses, as a second line of defence. The page's title and summary are
  not part of the fragment; the caller places them (the title as the page's only ``<h1>``).
- ``education_index(knowledge)`` lists the pages in the order of the source document, so the
  index reads like the document: a page sits at the position of its main section, the first
  one it cites in ``sections``.
"""

from __future__ import annotations

from cds.kb.loader import Knowledge
from cds.kb.schemas import EducationPage
from cds.web.markdown import render_markdown

__all__ = ["ALLOWED_TAGS", "education_index", "render_education_html"]

ALLOWED_TAGS = frozenset(
    {"a", "blockquote", "br", "em", "h2", "h3", "h4", "hr", "li", "ol", "p", "strong", "ul"}
)
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}


def render_education_html(page: EducationPage) -> str:
    """The page's body as a sanitised HTML fragment (headings, paragraphs, lists, links)."""
    return render_markdown(page.body, tags=ALLOWED_TAGS, attributes=_ALLOWED_ATTRIBUTES)


def education_index(knowledge: Knowledge) -> list[EducationPage]:
    """Every education page, in the source document's section order of its main section.

    Pages with the same main section are ordered by title. The loader has already checked
    that every cited section is a heading of the document.
    """
    position = {section.heading: index for index, section in enumerate(knowledge.source.sections)}
    return sorted(
        knowledge.education.values(),
        key=lambda page: (position.get(page.sections[0], len(position)), page.title),
    )
