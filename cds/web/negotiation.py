"""Content negotiation for the pages: does the caller want an HTML page or an API answer?

A browser asks for ``text/html`` first; curl asks for ``*/*`` and API clients for JSON. Only a
caller that ranks HTML at least as high as any JSON type gets a page; everyone else keeps the
OperationOutcome the API answers with.
"""

from __future__ import annotations

__all__ = ["prefers_html"]

_HTML = ("text/html", "application/xhtml+xml")
_JSON = ("application/json", "application/fhir+json")


def _quality(parameters: list[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def prefers_html(accept: str | None) -> bool:
    """True when the ``Accept`` header ranks an HTML type above zero and no JSON type higher."""
    html = json = 0.0
    for item in (accept or "").split(","):
        media, *parameters = item.split(";")
        media = media.strip().lower()
        quality = _quality(parameters)
        if media in _HTML:
            html = max(html, quality)
        elif media in _JSON:
            json = max(json, quality)
    return html > 0 and html >= json
