"""FHIR R4 resources for tests: the few shapes most tests build, written once.

Each builder returns a plain dict in R4 shape (what an EHR sends), with a ``subject`` naming
``patient`` and only the elements given; ``extra`` keyword arguments are added as they are, so
a test can add or override any element (``abatementDateTime=...``, ``verificationStatus=...``).
Tests of one odd shape (a link-less Bundle, an R5 resource) still write that shape inline.
"""

from __future__ import annotations

from typing import Any

from cds.kb.code_systems import LOINC

__all__ = [
    "ACTIVE",
    "UCUM",
    "coding",
    "condition",
    "medication_request",
    "observation",
    "quantity",
    "searchset",
]

UCUM = "http://unitsofmeasure.org"
# Condition.clinicalStatus "active" (terminology.hl7.org CodeSystem condition-clinical).
ACTIVE: dict[str, Any] = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
    ]
}


def coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    out = {"system": system, "code": code}
    if display is not None:
        out["display"] = display
    return out


def _subject(patient: str) -> dict[str, str]:
    return {"reference": f"Patient/{patient}"}


def condition(
    rid: str,
    code: dict[str, str],
    *,
    patient: str = "p1",
    onset: str | None = None,
    active: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """A Condition coded ``code``; ``active`` sets clinicalStatus, ``onset`` onsetDateTime."""
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": rid,
        "subject": _subject(patient),
        "code": {"coding": [code]},
    }
    if active:
        resource["clinicalStatus"] = ACTIVE
    if onset is not None:
        resource["onsetDateTime"] = onset
    return resource | extra


def quantity(value: float, unit: str, *, ucum: bool = True) -> dict[str, Any]:
    """A Quantity; ``ucum=False`` leaves out system and code (a unit written as text only)."""
    if not ucum:
        return {"value": value, "unit": unit}
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def observation(
    rid: str,
    code: dict[str, str] | str,
    *,
    patient: str = "p1",
    date: str | None = None,
    status: str = "final",
    value: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An Observation; a bare string ``code`` is a LOINC code."""
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": rid,
        "status": status,
        "subject": _subject(patient),
        "code": {"coding": [coding(LOINC, code) if isinstance(code, str) else code]},
    }
    if date is not None:
        resource["effectiveDateTime"] = date
    if value is not None:
        resource["valueQuantity"] = value
    return resource | extra


def medication_request(
    rid: str,
    medication: dict[str, str] | str,
    *,
    patient: str = "p1",
    status: str = "active",
    **extra: Any,
) -> dict[str, Any]:
    """A MedicationRequest for a coded medicine, or (a string) a ``medicationReference``."""
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": "order",
        "subject": _subject(patient),
    }
    if isinstance(medication, str):
        resource["medicationReference"] = {"reference": medication}
    else:
        resource["medicationCodeableConcept"] = {"coding": [medication]}
    return resource | extra


def searchset(
    *resources: dict[str, Any], next_url: str | None = None, match: bool = False
) -> dict[str, Any]:
    """A searchset Bundle of ``resources``; ``match`` marks each entry ``search.mode: match``."""
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": r, "search": {"mode": "match"}} if match else {"resource": r}
            for r in resources
        ],
    }
    if next_url is not None:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle
