"""Answer one prefetch query from a patient's resources, as a FHIR R4 server would.

Offline requests (``cds evaluate``, rule cases, the preview, the burden panel, the benchmark)
are built from a patient's Bundle rather than fetched. Each prefetch key gets what a server
would return for the key's query, so an offline request is the size and shape of a real one.

What is evaluated, and how:

- ``code`` (token search) on the element the R4 ``code`` parameter of the type searches
  (``Observation.code``, ``MedicationRequest.medicationCodeableConcept``...): ``system|code``,
  ``|code`` (a coding without a system), bare ``code`` (any system), ``system|`` (any code of
  the system); a comma separates alternatives (OR); any coding of the element may match.
  Systems and codes are compared as the record reader compares them (aliases such as
  ``urn:oid:2.16.840.1.113883.6.1`` for LOINC, ICD-10-CM with or without its dot), so a
  resource the service would read under an alias is kept. A server compares system URIs
  literally and would leave such a resource out: offline requests are, there, a superset of
  a server's answer, never a subset. A resource without the element does not match.
- ``status`` (token search on the ``status`` element): the code must be one of the values;
  a resource without a status does not match (as on a server).
- ``_include=<Type>:medication``: the Medications that matched entries reference
  (``medicationReference``; a contained ``#id`` is already inside its resource).
- ``_elements=a,b``: each match is cut to those top-level elements plus ``resourceType``,
  ``id`` and ``meta``, and tagged ``SUBSETTED`` as R4 asks of a server (included resources are
  returned whole).

Not evaluated, so every resource is kept: ``patient`` (the Bundle is taken as the patient's
record; a resource naming another patient is passed on for the service's own guard to refuse,
which is what tests of that guard need), any parameter with a modifier (``code:text``), and any
other parameter (dates, ``category``, ``_count``...). A ``code`` or ``status`` search on a type
whose element is not listed here is not evaluated either. An ``_include`` other than
``:medication`` adds nothing (the plan asks for no other).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cds.call.prefetch import search_parameters
from cds.engine.record import referenced_medication
from cds.kb.terminology import canonical_system, normalize_code

__all__ = ["answer_query", "token_values"]

_MEDICATION_TYPES = ("MedicationRequest", "MedicationStatement", "MedicationAdministration")

# Type -> the element the R4 ``code`` search parameter of that type reads.
_CODE_ELEMENT: dict[str, str] = {
    "Condition": "code",
    "DiagnosticReport": "code",
    "Observation": "code",
    "Procedure": "code",
    "ServiceRequest": "code",
    **dict.fromkeys(_MEDICATION_TYPES, "medicationCodeableConcept"),
}

# Types whose R4 ``status`` search parameter reads their ``status`` element.
_STATUS_TYPES = frozenset(
    {
        "DiagnosticReport",
        "DocumentReference",
        "ImagingStudy",
        "Observation",
        "Procedure",
        "ResearchSubject",
        "ServiceRequest",
        *_MEDICATION_TYPES,
    }
)

# Parameters that select nothing here: every resource is kept (see the module docstring).
_KEPT = frozenset({"patient", "subject"})

# What R4 search says a server marks a resource cut by ``_elements`` with.
SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}
_ALWAYS_RETURNED = ("resourceType", "id", "meta")

_Token = tuple[str | None, str]  # (system: None when not given, "" for "|code"; code)


def _split_unescaped(text: str, separator: str, limit: int = -1) -> list[str]:
    """Split at ``separator`` where it is not escaped with a backslash (FHIR search escaping)."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            current.append(char + next(chars, ""))
        elif char == separator and limit != 0:
            parts.append("".join(current))
            current = []
            limit -= 1
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    out: list[str] = []
    chars = iter(text)
    for char in chars:
        out.append(next(chars, "") if char == "\\" else char)
    return "".join(out)


def token_values(value: str) -> list[_Token]:
    """The alternatives of one token parameter value: ``a|1,|2,3`` -> (a, 1), ("", 2), (None, 3)."""
    tokens: list[_Token] = []
    for alternative in _split_unescaped(value, ","):
        parts = _split_unescaped(alternative, "|", limit=1)
        if len(parts) == 1:
            tokens.append((None, _unescape(parts[0])))
        else:
            tokens.append((_unescape(parts[0]), _unescape(parts[1])))
    return tokens


def _coding_matches(coding: Mapping[str, Any], token: _Token) -> bool:
    system, code = token
    raw_system = coding.get("system")
    has_system = isinstance(raw_system, str) and raw_system.strip() != ""
    if system == "":  # |code: only a coding without a system
        if has_system:
            return False
        coded = coding.get("code")
        return isinstance(coded, str | int) and str(coded).strip() == code.strip()
    canonical = canonical_system(raw_system) if has_system else None
    if system is not None and (canonical is None or canonical != canonical_system(system)):
        return False
    if system is not None and code == "":  # system|: any code of the system
        return True
    form = canonical or ""
    coded = normalize_code(form, coding.get("code"))
    return coded is not None and coded == normalize_code(form, code)


def _concept_matches(concept: Any, tokens: Sequence[_Token]) -> bool:
    if not isinstance(concept, dict):
        return False
    codings = concept.get("coding")
    return any(
        isinstance(coding, dict) and _coding_matches(coding, token)
        for coding in (codings if isinstance(codings, list) else ())
        for token in tokens
    )


def _status_matches(resource: Mapping[str, Any], tokens: Sequence[_Token]) -> bool:
    status = resource.get("status")
    return isinstance(status, str) and any(code == status for _, code in tokens)


def _selects(rtype: str, name: str) -> bool:
    """Whether ``name`` is evaluated here for ``rtype`` (otherwise it keeps every resource)."""
    if name in _KEPT or ":" in name or name.startswith("_"):
        return False
    return (name == "code" and rtype in _CODE_ELEMENT) or (
        name == "status" and rtype in _STATUS_TYPES
    )


def _matches(resource: Mapping[str, Any], rtype: str, name: str, tokens: Sequence[_Token]) -> bool:
    if name == "code":
        return _concept_matches(resource.get(_CODE_ELEMENT[rtype]), tokens)
    return _status_matches(resource, tokens)


def _included_medications(
    matched: Iterable[dict[str, Any]], medications: Mapping[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    included: dict[int, dict[str, Any]] = {}
    for resource in matched:
        reference = resource.get("medicationReference")
        ref = reference.get("reference") if isinstance(reference, dict) else None
        if not isinstance(ref, str) or ref.startswith("#"):
            continue
        medication = referenced_medication(resource, medications)
        if medication is not None:
            included.setdefault(id(medication), medication)
    return list(included.values())


def _subset(resource: Mapping[str, Any], elements: Iterable[str]) -> dict[str, Any]:
    kept = {name: resource[name] for name in (*_ALWAYS_RETURNED, *elements) if name in resource}
    meta = kept.get("meta")
    meta = dict(meta) if isinstance(meta, dict) else {}
    tags = meta.get("tag")
    meta["tag"] = [*(tags if isinstance(tags, list) else ()), SUBSETTED]
    kept["meta"] = meta
    return kept


def answer_query(
    query: str, by_type: Mapping[str, Sequence[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The resources a FHIR server would return for ``query`` (a template or a rendered search)
    from ``by_type`` (one patient's resources by type): the matches, then what they include."""
    rtype, params = search_parameters(query)
    selecting = [(name, token_values(value)) for name, value in params if _selects(rtype, name)]
    matched = [
        resource
        for resource in by_type.get(rtype, ())
        if all(_matches(resource, rtype, name, tokens) for name, tokens in selecting)
    ]
    included: list[dict[str, Any]] = []
    if (
        ("_include", f"{rtype}:medication") in params
        and rtype in _MEDICATION_TYPES
        and by_type.get("Medication")
    ):
        medications = {
            m["id"]: m for m in by_type.get("Medication", ()) if isinstance(m.get("id"), str)
        }
        included = _included_medications(matched, medications)
    elements = [
        element.strip()
        for name, value in params
        if name == "_elements"
        for element in value.split(",")
        if element.strip()
    ]
    if elements:
        matched = [_subset(resource, elements) for resource in matched]
    return matched + included
