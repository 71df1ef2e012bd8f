"""The Jinja2 environment of the pages: templates shipped in ``cds/web/templates``, autoescaped."""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from cds.web.markdown import render_markdown

__all__ = ["pretty_json", "render_page", "sentence"]


def pretty_json(value: Any) -> str:
    """JSON for people: indented, keys in their original order, non-ASCII kept."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def sentence(text: str) -> str:
    """A message shown on its own starts with a capital letter ("pick ..." -> "Pick ...");
    the errors are worded lower case to fit after "error:" on the command line."""
    return text[:1].upper() + text[1:]


def _markdown_filter(text: str | None) -> Markup:
    # render_markdown returns sanitised HTML, so marking it safe does not trust the input.
    return Markup(render_markdown(text or ""))


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("cds.web", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["markdown"] = _markdown_filter
    env.filters["pretty_json"] = pretty_json
    env.filters["sentence"] = sentence
    return env


def render_page(template: str, **context: Any) -> str:
    """Render ``cds/web/templates/<template>`` with ``context``; every value is HTML-escaped."""
    return _environment().get_template(template).render(**context)
