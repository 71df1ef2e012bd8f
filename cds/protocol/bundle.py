"""Reading a FHIR Bundle: the resources of its entries, its outcome entries, its next link.

The one reader of a prefetch value (:mod:`cds.call.prefetch`) and of a FHIR server's search
pages (:mod:`cds.fhir.client`), so that both take the same entries as data.

An entry is an *outcome* entry, information about how the search went and never a fact about
the patient, when its ``search.mode`` is ``outcome`` (FHIR R4 SearchEntryMode,
http://hl7.org/fhir/ValueSet/search-entry-mode) or its resource is an OperationOutcome (a server
that leaves ``search.mode`` out). The ``next`` link is the first link whose relation is
``next``: a Bundle that names two gives no reason to prefer the later one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = ["BundlePage", "read_bundle"]


class BundlePage(NamedTuple):
    """A tuple, not a frozen dataclass: one is made per prefetch key of every call."""

    resources: list[dict[str, Any]]  # the entries' resources, outcome entries left out
    outcomes: list[dict[str, Any]]  # the outcome entries' resources
    next_url: str | None  # as written: relative links are the caller's to resolve


def read_bundle(bundle: Mapping[str, Any]) -> BundlePage:
    """Entries without a resource object, and links that are not objects, are skipped."""
    resources: list[dict[str, Any]] = []
    outcomes: list[dict[str, Any]] = []
    entries = bundle.get("entry")
    for entry in entries if isinstance(entries, list) else ():
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        search = entry.get("search")
        if resource.get("resourceType") == "OperationOutcome" or (
            search is not None and isinstance(search, dict) and search.get("mode") == "outcome"
        ):
            outcomes.append(resource)
        else:
            resources.append(resource)
    return BundlePage(resources, outcomes, _next_link(bundle))


def _next_link(bundle: Mapping[str, Any]) -> str | None:
    links = bundle.get("link")
    for link in links if isinstance(links, list) else ():
        if (
            isinstance(link, dict)
            and link.get("relation") == "next"
            and isinstance(link.get("url"), str)
        ):
            return str(link["url"])
    return None
