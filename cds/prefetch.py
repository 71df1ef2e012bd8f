"""Resolve a service's prefetch keys for one call: from the request, or from the FHIR server.

For every key the request either

- carries a value (a Bundle or a resource): use it, following ``next`` links when it is paged;
- carries ``null``: the client knows there is no data; do not fetch;
- carries an OperationOutcome: the client's fetch failed; fetch it ourselves if we can;
- lacks the key: the client did not try; fetch it ourselves if we can.

A key we cannot obtain is *unavailable*; :mod:`cds.service_call` decides whether that means
412 (a required key) or skipping the rules that need it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cds.errors import FhirServerError
from cds.fhir_client import FhirClient
from cds.hooks import HookRequest
from cds.prefetch_plan import PrefetchPlan

__all__ = ["ResolvedData", "render_template", "resolve_prefetch", "split_prefetch_value"]

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


def render_template(template: str, context: Mapping[str, Any]) -> str | None:
    """Fill ``{{context.x}}`` and ``{{userXxxId}}`` tokens; None if a token has no value."""
    missing = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal missing
        token = match.group(1)
        value: Any = None
        if token.startswith("context."):
            value = context.get(token.removeprefix("context."))
        elif token in _USER_TOKENS:
            user = context.get("userId")
            prefix = _USER_TOKENS[token] + "/"
            if isinstance(user, str) and user.startswith(prefix):
                value = user.removeprefix(prefix)
        if not isinstance(value, str | int) or isinstance(value, bool) or value == "":
            missing = True
            return ""
        return str(value)

    rendered = _TOKEN.sub(substitute, template)
    return None if missing else rendered


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
    resources: list[Any] = []
    outcomes = 0
    for entry in value.get("entry") or ():
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        if resource.get("resourceType") == "OperationOutcome":
            outcomes += 1
            continue
        resources.append(resource)
    if outcomes and not resources:
        return "outcome", [], None
    next_url = None
    for link in value.get("link") or ():
        if (
            isinstance(link, dict)
            and link.get("relation") == "next"
            and isinstance(link.get("url"), str)
        ):
            next_url = link["url"]
    return "data", resources, next_url


async def resolve_prefetch(
    request: HookRequest,
    plan: PrefetchPlan,
    client: FhirClient | None,
    *,
    budget_seconds: float,
    no_client_reason: str = "no fhirServer in the request",
) -> ResolvedData:
    data = ResolvedData()
    prefetch = request.prefetch or {}
    jobs: dict[str, str] = {}
    for key in plan.keys:
        query = render_template(key.template, request.context)
        if key.name in prefetch:
            kind, resources, next_url = split_prefetch_value(prefetch[key.name])
            data.resources.extend(resources)
            if kind in ("data", "null") and next_url is None:
                continue
            if kind == "data" and next_url is not None:
                if client is not None:
                    jobs[key.name] = next_url
                continue  # keep the first page if we cannot follow the rest
        if query is None:
            data.unavailable[key.name] = "the template's context value is missing"
        elif client is None:
            data.unavailable[key.name] = no_client_reason
        else:
            jobs[key.name] = query
    if not jobs:
        return data
    assert client is not None
    names = list(jobs)
    try:
        async with asyncio.timeout(budget_seconds):
            results = await asyncio.gather(
                *(client.fetch(jobs[name]) for name in names), return_exceptions=True
            )
    except TimeoutError:
        for name in names:
            data.unavailable.setdefault(
                name, "the FHIR server did not answer within the time budget"
            )
        data.fetch_errors.append("timeout")
        return data
    for name, result in zip(names, results, strict=True):
        if isinstance(result, FhirServerError):
            data.unavailable[name] = result.diagnostics
            data.fetch_errors.append(result.kind)
        elif isinstance(result, BaseException):
            raise result
        else:
            data.fetched.append(name)
            data.resources.extend(result)
    return data
