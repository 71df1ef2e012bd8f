"""Check the FHIR resources rules propose, with fhir.resources R4B models, at load time."""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import ValidationError

__all__ = [
    "check_suggestion_resource",
    "education_placeholders",
    "fill_placeholders",
    "validate_r4_resource",
]

_ALLOWED = {
    "ServiceRequest",
    "CommunicationRequest",
    "DocumentReference",
    "MedicationRequest",
    "Task",
}
_PLACEHOLDER_PATIENT = {"reference": "Patient/example"}


def validate_r4_resource(resource: dict[str, Any]) -> list[str]:
    """Problems found validating ``resource`` with its fhir.resources R4B model (empty = valid)."""
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or not rtype.isalpha():
        return ["resourceType is missing"]
    try:
        module = importlib.import_module(f"fhir.resources.R4B.{rtype.lower()}")
        model = getattr(module, rtype)
    except (ImportError, AttributeError):
        return [f"unknown FHIR resource type {rtype!r}"]
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        return [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
    return []


def check_suggestion_resource(resource: dict[str, Any]) -> list[str]:
    """A proposed resource must be a valid R4 draft/proposal once the subject is filled in."""
    rtype = resource.get("resourceType")
    if rtype not in _ALLOWED:
        return [f"resourceType must be one of {sorted(_ALLOWED)}, not {rtype!r}"]
    problems = []
    if "subject" in resource:
        problems.append("subject is filled in per patient at run time; leave it out")
    if rtype in ("ServiceRequest", "CommunicationRequest", "MedicationRequest") and (
        resource.get("status") != "draft"
    ):
        problems.append("status must be 'draft'")
    if rtype in ("ServiceRequest", "MedicationRequest") and resource.get("intent") != "proposal":
        problems.append("intent must be 'proposal'")
    try:
        filled = fill_placeholders(resource, "http://127.0.0.1:8080")
    except ValueError as exc:
        return [*problems, str(exc)]
    problems += validate_r4_resource({**filled, "subject": _PLACEHOLDER_PATIENT})
    return problems


_PLACEHOLDER = "{{education:"


def education_placeholders(value: Any) -> list[str]:
    """The education-page slugs that ``{{education:<slug>}}`` placeholders in ``value`` name.

    Raises ``ValueError`` for a placeholder without its closing ``}}``.
    """
    if isinstance(value, str):
        slugs = []
        start = value.find(_PLACEHOLDER)
        while start >= 0:
            end = value.find("}}", start)
            if end < 0:
                raise ValueError(f"{value[start:]!r}: an education placeholder needs its '}}}}'")
            slugs.append(value[start + len(_PLACEHOLDER) : end])
            start = value.find(_PLACEHOLDER, end)
        return slugs
    if isinstance(value, dict):
        return [slug for item in value.values() for slug in education_placeholders(item)]
    if isinstance(value, list):
        return [slug for item in value for slug in education_placeholders(item)]
    return []


def fill_placeholders(value: Any, base_url: str) -> Any:
    """Replace ``{{education:<slug>}}`` with the page's absolute URL, anywhere in ``value``.

    Raises ``ValueError`` for a placeholder without its closing ``}}`` (the loader reports it).
    """
    if isinstance(value, str):
        if _PLACEHOLDER in value:
            start = value.index(_PLACEHOLDER)
            end = value.find("}}", start)
            if end < 0:
                raise ValueError(f"{value[start:]!r}: an education placeholder needs its '}}}}'")
            slug = value[start + len(_PLACEHOLDER) : end]
            url = f"{base_url.rstrip('/')}/education/{slug}"
            return fill_placeholders(value[:start] + url + value[end + 2 :], base_url)
        return value
    if isinstance(value, dict):
        return {key: fill_placeholders(item, base_url) for key, item in value.items()}
    if isinstance(value, list):
        return [fill_placeholders(item, base_url) for item in value]
    return value
