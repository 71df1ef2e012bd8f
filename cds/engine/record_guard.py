"""What the service refuses to read: resources that are not FHIR R4, or not this patient.

EHRs send R4. A resource in another version's shape would be *misread*, not rejected, by the
tolerant record reader: an STU3 ``clinicalStatus: "resolved"`` is not a CodeableConcept, so
the condition would read as having no clinical status (and count as active); an R5
``MedicationRequest.medication`` is neither ``medicationCodeableConcept`` nor
``medicationReference``, so the order would read as no medicine at all. So the fields our
rules read are checked for other versions' shapes, and a call holding one is answered 400
with an OperationOutcome naming the resource and the field (:func:`check_record`).

Data of another patient is refused the same way: a prefetched Patient whose id is not
``context.patientId``, or a resource whose ``subject``/``patient`` names another Patient,
means the EHR rendered the prefetch for someone else, and nothing in the call can be trusted
for this patient (decision recorded in ``docs/record-reading.md``).

Only what rules read is checked, with a few dictionary look-ups per resource: no validation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from cds.errors import BadRequest
from cds.kb.fact_kinds import KIND_OF_TYPE, PATIENT_ELEMENT

__all__ = ["NotR4", "WrongPatient", "belongs_to", "check_record", "version_problem"]


class NotR4(BadRequest):
    """400: a resource has another FHIR version's shape in a field the rules read."""

    code = "not-supported"


class WrongPatient(BadRequest):
    """400: the data is about another patient than ``context.patientId``."""

    code = "invalid"


def _present(value: Any) -> bool:
    return value is not None


def _plain_string(value: Any) -> bool:
    return isinstance(value, str)


def _codeable_reference(value: Any) -> bool:
    return isinstance(value, dict) and ("concept" in value or "reference" in value)


def _concepts(value: Any) -> bool:
    """A list holding CodeableConcepts where R4 has Codings."""
    return isinstance(value, list) and any(isinstance(v, dict) and "coding" in v for v in value)


_Marker = tuple[str, Callable[[Any], bool], str]  # field, test, what the shape is

# Per resource type: fields whose shape gives another version away.
_MARKERS: dict[str, tuple[_Marker, ...]] = {
    "Condition": (
        (
            "clinicalStatus",
            _plain_string,
            "a plain code string (STU3/DSTU2); R4 has a CodeableConcept",
        ),
        (
            "verificationStatus",
            _plain_string,
            "a plain code string (STU3/DSTU2); R4 has a CodeableConcept",
        ),
        ("patient", _present, "the DSTU2 field; R4 has Condition.subject"),
    ),
    "MedicationRequest": (
        ("medication", _present, "an R5 CodeableReference; R4 has medication[x]"),
    ),
    "MedicationStatement": (
        ("medication", _present, "an R5 CodeableReference; R4 has medication[x]"),
        ("taken", _present, "the STU3 field; R4 reads status"),
        ("patient", _present, "the DSTU2 field; R4 has MedicationStatement.subject"),
    ),
    "MedicationAdministration": (
        ("medication", _present, "an R5 CodeableReference; R4 has medication[x]"),
        ("patient", _present, "the DSTU2 field; R4 has MedicationAdministration.subject"),
    ),
    "Procedure": (
        ("occurrenceDateTime", _present, "the R5 field; R4 has performed[x]"),
        ("occurrencePeriod", _present, "the R5 field; R4 has performed[x]"),
        ("notPerformed", _present, "the STU3/DSTU2 field; R4 reads status"),
        ("patient", _present, "the DSTU2 field; R4 has Procedure.subject"),
    ),
    "ServiceRequest": (
        ("code", _codeable_reference, "an R5 CodeableReference; R4 has a CodeableConcept"),
    ),
    "ImagingStudy": (("modality", _concepts, "R5 CodeableConcepts; R4 has Codings"),),
    "ResearchSubject": (("subject", _present, "the R5 field; R4 has ResearchSubject.individual"),),
}

# Resource types that exist only in other versions, where R4 has the named one.
_OTHER_VERSION_TYPES: dict[str, str] = {
    "MedicationOrder": "DSTU2 (R4: MedicationRequest)",
    "ProcedureRequest": "STU3/DSTU2 (R4: ServiceRequest)",
    "ReferralRequest": "STU3 (R4: ServiceRequest)",
    "DiagnosticOrder": "DSTU2 (R4: ServiceRequest)",
}


def version_problem(resource: dict[str, Any]) -> tuple[str, str] | None:
    """(field, what is wrong) when ``resource`` has another version's shape; else None."""
    rtype = resource.get("resourceType")
    if rtype in _OTHER_VERSION_TYPES:
        return "resourceType", f"a resource type of {_OTHER_VERSION_TYPES[rtype]}"
    for field, test, what in _MARKERS.get(rtype, ()) if isinstance(rtype, str) else ():
        value = resource.get(field)
        if value is not None and test(value):
            return field, what
    return None


def belongs_to(resource: dict[str, Any], patient_id: str) -> bool:
    """False only when the resource clearly names another patient."""
    subject = resource.get(PATIENT_ELEMENT.get(resource["resourceType"], "subject"))
    if not isinstance(subject, dict):
        subject = resource.get("patient")
    if not isinstance(subject, dict):
        return True
    reference = subject.get("reference")
    if not isinstance(reference, str) or not reference:
        return True
    tail = reference.rsplit("/", 1)[-1].removeprefix("urn:uuid:")
    return tail == patient_id or not reference.startswith(("Patient/", "urn:uuid:"))


def _name(resource: dict[str, Any]) -> str:
    rid = resource.get("id")
    return f"{resource['resourceType']}/{rid}" if isinstance(rid, str) else resource["resourceType"]


def check_record(resources: Iterable[Any], patient_id: str, *, where: str) -> None:
    """Raise :class:`NotR4` or :class:`WrongPatient` for the first resource that is not R4 or
    not this patient's. ``where`` names the data's origin in the message.

    On the hot path: a resource whose subject is written the usual way costs a few look-ups.
    """
    usual = {f"Patient/{patient_id}", f"urn:uuid:{patient_id}"}
    for resource in resources:
        if type(resource) is not dict:
            continue
        rtype = resource.get("resourceType")
        if type(rtype) is not str:
            continue
        if rtype in _MARKERS or rtype in _OTHER_VERSION_TYPES:
            problem = version_problem(resource)
            if problem is not None:
                field, what = problem
                raise NotR4(
                    f"{_name(resource)} in {where}: {rtype}.{field} is {what}. This service "
                    "reads FHIR R4; send R4 resources",
                    expression=[f"{rtype}.{field}"],
                )
        if rtype == "Patient":
            pid = resource.get("id")
            if isinstance(pid, str) and pid != patient_id:
                raise WrongPatient(
                    f"Patient/{pid} in {where} is not context.patientId ({patient_id})",
                    expression=["Patient.id"],
                )
        elif rtype in KIND_OF_TYPE or rtype == "Encounter":  # the resources naming their patient
            field = PATIENT_ELEMENT.get(rtype, "subject")
            subject = resource.get(field)
            reference = subject.get("reference") if type(subject) is dict else None
            if type(reference) is str and reference in usual:
                continue
            if not belongs_to(resource, patient_id):
                raise WrongPatient(
                    f"{_name(resource)} in {where} is about another patient than "
                    f"context.patientId ({patient_id})",
                    expression=[f"{rtype}.{field}"],
                )
