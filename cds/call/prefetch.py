"""Resolve a service's prefetch keys for one call: from the request, or from the FHIR server.

For every key the request either

- carries a value (a Bundle or a resource): use it; when it is paged, fetch the rest from the
  ``next`` link, and when that cannot be done the key is unavailable (part of a list is not
  the list: a rule could take a missing page for an absence);
- carries ``null``: the client knows there is no data; do not fetch;
- carries an OperationOutcome: the client's fetch failed; fetch it ourselves if we can;
- lacks the key: the client did not try; fetch it ourselves if we can.

A key we cannot obtain is *unavailable*; :mod:`cds.call.service_call` decides whether that means
412 (a required key) or skipping the rules that need it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, quote

from cds.errors import FhirServerError
from cds.fhir.client import FhirClient
from cds.kb.prefetch_plan import PrefetchPlan
from cds.protocol.bundle import read_bundle
from cds.protocol.wire import HookRequest

__all__ = [
    "ResolvedData",
    "missing_medications",
    "render_template",
    "resolve_prefetch",
    "search_parameters",
    "split_prefetch_value",
]

_TOKEN = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")
_USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}


@dataclass
class ResolvedData:
    resources: list[Any] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # key -> why
    fetched: list[str] = field(default_factory=list)
    fetch_errors: list[str] = field(default_factory=list)  # FhirServerError kinds


@lru_cache(maxsize=1024)
def _template_parts(template: str) -> tuple[str, ...]:
    """Literal text at even positions, token names at odd ones (templates come from knowledge)."""
    return tuple(_TOKEN.split(template))


@lru_cache(maxsize=4096)
def _quoted(value: str) -> str:
    return quote(value, safe="")


def _token_value(token: str, context: Mapping[str, Any]) -> str | None:
    value: Any = None
    if token.startswith("context."):
        value = context.get(token.removeprefix("context."))
    elif token in _USER_TOKENS:
        user = context.get("userId")
        prefix = _USER_TOKENS[token] + "/"
        if isinstance(user, str) and user.startswith(prefix):
            value = user.removeprefix(prefix)
    if not isinstance(value, str | int) or isinstance(value, bool) or value in ("", ".", ".."):
        return None
    return _quoted(str(value))


def render_template(template: str, context: Mapping[str, Any]) -> str | None:
    """Fill ``{{context.x}}`` and ``{{userXxxId}}`` tokens; None if a token has no value.

    Values are percent-encoded, so a context value can neither add query parameters nor
    climb out of the FHIR base path (``..`` alone is refused: it is not a FHIR id).
    """
    parts = _template_parts(template)
    rendered = list(parts)
    for index in range(1, len(parts), 2):
        value = _token_value(parts[index], context)
        if value is None:
            return None
        rendered[index] = value
    return "".join(rendered)


def search_parameters(query: str) -> tuple[str, list[tuple[str, str]]]:
    """A query's path (``Observation``) and its (name, value) parameters, in order, decoded.

    The one reading of a search's query string: a template, a rendered query or a URL. A
    parameter may repeat (``_include`` twice), so pairs are returned, not a dict.
    """
    path, _, params = query.partition("?")
    return path, parse_qsl(params, keep_blank_values=True)


def split_prefetch_value(value: Any) -> tuple[str, list[Any], str | None]:
    """Classify one prefetch value: ("data" | "null" | "outcome", resources, next-link)."""
    if value is None:
        return "null", [], None
    if not isinstance(value, dict):
        return "outcome", [], None
    rtype = value.get("resourceType")
    if rtype == "OperationOutcome":
        return "outcome", [], None
    if rtype != "Bundle":
        return "data", [value], None
    page = read_bundle(value)
    if page.outcomes and not page.resources:
        return "outcome", [], None
    return "data", page.resources, page.next_url


async def resolve_prefetch(
    request: HookRequest,
    plan: PrefetchPlan,
    client: FhirClient | None,
    *,
    budget_seconds: float,
    no_client_reason: str = "no fhirServer in the request",
) -> ResolvedData:
    """Collect every key's resources; fetch the missing ones in parallel within the budget.

    A paged prefetch Bundle is completed from its ``next`` link when that points at the
    request's own FHIR server (the token goes nowhere else); otherwise the key is unavailable.
    Queries that finish within the budget are kept when others time out. Then, with a FHIR
    server, Medications that medication entries reference and that did not come back (an EHR
    that ignores ``_include``) are read, in what is left of the budget.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget_seconds
    data = await _resolve_keys(
        request, plan, client, budget_seconds=budget_seconds, no_client_reason=no_client_reason
    )
    if client is not None:
        await _read_referenced_medications(data, client, deadline - loop.time())
    return data


# At most this many referenced Medications are read per call: a record that references more
# distinct products than this leaves the rest unread (and so unclassified, never absent).
_MAX_MEDICATION_READS = 50
# How ``ResolvedData.fetched`` names those reads (it otherwise lists prefetch keys).
REFERENCED_MEDICATIONS = "referenced-medications"
_MEDICATION_TYPES = frozenset(
    {"MedicationRequest", "MedicationStatement", "MedicationAdministration"}
)


def missing_medications(resources: list[Any]) -> list[str]:
    """Ids of ``Medication/{id}`` that medication entries reference and ``resources`` lacks."""
    have = {
        r.get("id")
        for r in resources
        if isinstance(r, dict) and r.get("resourceType") == "Medication"
    }
    wanted: dict[str, None] = {}
    for resource in resources:
        if not isinstance(resource, dict) or resource.get("resourceType") not in _MEDICATION_TYPES:
            continue
        reference = resource.get("medicationReference")
        ref = reference.get("reference") if isinstance(reference, dict) else None
        if not isinstance(ref, str) or not ref.startswith("Medication/"):
            continue  # contained (#id), absolute or urn references are not read
        mid = ref.removeprefix("Medication/")
        if mid and "/" not in mid and mid not in have:
            wanted[mid] = None
    return list(wanted)[:_MAX_MEDICATION_READS]


async def _read_referenced_medications(
    data: ResolvedData, client: FhirClient, budget_seconds: float
) -> None:
    """Read missing referenced Medications; one that cannot be read leaves its entries
    unclassified (see ``docs/record-reading.md``), never a failed call."""
    ids = missing_medications(data.resources)
    if not ids:
        return
    if budget_seconds <= 0:
        data.fetch_errors.append("timeout")
        return
    tasks = [asyncio.create_task(client.fetch(f"Medication/{_quoted(mid)}")) for mid in ids]
    try:
        _, late = await asyncio.wait(tasks, timeout=budget_seconds)
    finally:
        pending = [task for task in tasks if not task.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    read = 0
    for task in tasks:
        if task in late or task.cancelled():
            data.fetch_errors.append("timeout")
            continue
        error = task.exception()
        if isinstance(error, FhirServerError):
            data.fetch_errors.append(error.kind)
        elif error is not None:
            raise error
        else:
            read += 1
            data.resources.extend(r for r in task.result() if r.get("resourceType") == "Medication")
    if read:
        data.fetched.append(REFERENCED_MEDICATIONS)


async def _resolve_keys(
    request: HookRequest,
    plan: PrefetchPlan,
    client: FhirClient | None,
    *,
    budget_seconds: float,
    no_client_reason: str,
) -> ResolvedData:
    data = ResolvedData()
    prefetch = request.prefetch or {}
    jobs: dict[str, str] = {}
    first_pages: dict[str, list[Any]] = {}  # a paged prefetch's page, used once the rest came
    for key in plan.keys:
        if key.name in prefetch:
            kind, resources, next_url = split_prefetch_value(prefetch[key.name])
            if kind in ("data", "null") and next_url is None:
                data.resources.extend(resources)
                continue
            if kind == "data" and next_url is not None:
                if client is None:
                    data.unavailable[key.name] = f"the prefetch is paged and {no_client_reason}"
                elif not client.owns(next_url):
                    data.unavailable[key.name] = "the prefetch's next page is on another origin"
                else:
                    first_pages[key.name] = resources
                    jobs[key.name] = next_url
                continue
        query = render_template(key.template, request.context)  # only what must be fetched
        if query is None:
            data.unavailable[key.name] = "the template's context value is missing"
        elif client is None:
            data.unavailable[key.name] = no_client_reason
        else:
            jobs[key.name] = query
    if not jobs:
        return data
    assert client is not None
    tasks = {name: asyncio.create_task(client.fetch(url)) for name, url in jobs.items()}
    late: set[asyncio.Task[list[dict[str, Any]]]] = set(tasks.values())
    try:
        _, late = await asyncio.wait(late, timeout=budget_seconds)
    finally:  # also when this call itself is cancelled: no fetch outlives it
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
    unexpected: list[BaseException] = []
    for name, task in tasks.items():
        if task in late:
            data.unavailable[name] = "the FHIR server did not answer within the time budget"
            data.fetch_errors.append("timeout")
            continue
        error = task.exception()
        if isinstance(error, FhirServerError):
            data.unavailable[name] = error.diagnostics
            data.fetch_errors.append(error.kind)
        elif error is not None:
            unexpected.append(error)
        else:
            data.fetched.append(name)
            data.resources.extend(first_pages.get(name, ()))
            data.resources.extend(task.result())
    if unexpected:  # a bug, not a FHIR server failure: let it become a 500
        raise unexpected[0]
    return data
