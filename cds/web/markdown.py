"""Markdown to safe HTML for pages: card details and other text written in markdown.

Raw HTML in the markdown is never passed through: markdown-it runs with ``html`` off (so a
``<script>`` in the text comes out as visible text) and nh3 then keeps only an allow-list of
tags and attributes, as a second line of defence for anything the renderer lets by.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet

import nh3
from markdown_it import MarkdownIt

__all__ = ["ALLOWED_ATTRIBUTES", "ALLOWED_TAGS", "render_markdown", "sanitize_html"]

ALLOWED_TAGS = frozenset(
    {
        "a",
        "blockquote",
        "br",
        "code",
        "em",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "li",
        "ol",
        "p",
        "pre",
        "strong",
        "table",
        "tbody",
        "td",
        "th",
        "thead",
        "tr",
        "ul",
    }
)
ALLOWED_ATTRIBUTES: Mapping[str, AbstractSet[str]] = {
    "a": {"href", "title"},
    "th": {"align"},
    "td": {"align"},
}
_URL_SCHEMES = frozenset({"http", "https", "mailto"})

_renderer = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def sanitize_html(
    html: str,
    *,
    tags: AbstractSet[str] = ALLOWED_TAGS,
    attributes: Mapping[str, AbstractSet[str]] = ALLOWED_ATTRIBUTES,
) -> str:
    """Keep only the allow-listed tags, attributes and URL schemes."""
    return str(
        nh3.clean(
            html,
            tags=set(tags),
            attributes={tag: set(names) for tag, names in attributes.items()},
            url_schemes=set(_URL_SCHEMES),
            link_rel="noopener noreferrer",
        )
    )


def render_markdown(
    text: str,
    *,
    tags: AbstractSet[str] = ALLOWED_TAGS,
    attributes: Mapping[str, AbstractSet[str]] = ALLOWED_ATTRIBUTES,
) -> str:
    """Render markdown to sanitised HTML (a fragment safe to insert into a page).

    Callers with a narrower purpose (patient pages) pass a smaller allow-list.
    """
    return sanitize_html(_renderer.render(text), tags=tags, attributes=attributes)
