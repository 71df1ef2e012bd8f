"""The fact kinds a rule can ask about: one registry, read by every part that knows kinds.

Each :class:`FactKind` says which FHIR resource types carry the kind, which elements hold its
codes and its date, which status values make a resource count, how the prefetch asks for it,
and how pages and explanations name it. The logic schema (:mod:`cds.kb.logic`), the prefetch
plan, the explanations, the status table (:mod:`cds.engine.statuses`), the date a time window
reads (:func:`resource_date`) and the record's sorting of resources all read this registry.
The engine registers, per kind, how it takes the codes out of a resource
(:func:`cds.engine.record.register_reader`): adding a kind is one :func:`register` call here
plus that reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cds.protocol.fhir_dates import first_date

__all__ = [
    "DATE_PATHS",
    "KINDS",
    "KIND_OF_TYPE",
    "PATIENT_ELEMENT",
    "FactKind",
    "PrefetchQuery",
    "StatusRow",
    "read_elements",
    "register",
    "resource_date",
    "unregister",
]


@dataclass(frozen=True)
class StatusRow:
    """Which values of one status element make a resource of one type count as a fact."""

    kind: str  # the fact kind
    resource: str  # the resource type
    element: str  # the element read
    query: str  # the queries the row applies to: "any" or "current" (status: current/active)
    codes: frozenset[str]  # the values that count
    absent_counts: bool  # whether a resource without the element counts
    why: str


@dataclass(frozen=True)
class PrefetchQuery:
    """One prefetch key for a kind: ``{resource_type}?patient={{context.patientId}}{params}``,
    or, with ``by_code``, narrowed to the codes of the value sets the rules read (a key no
    rule gives a code for is not asked)."""

    key: str
    resource_type: str
    params: str = ""
    by_code: bool = False
    # ask only for the elements the service reads (``_elements``, see :func:`read_elements`)
    elements_read_only: bool = False


Path = tuple[str, ...]

# The element naming the patient, for the R4 types where it is not ``subject``.
PATIENT_ELEMENT: dict[str, str] = {"ResearchSubject": "individual"}


@dataclass(frozen=True)
class FactKind:
    name: str  # as rules spell it: ``condition``, ``research-subject``
    resource_types: tuple[str, ...]  # empty: the kind is not read from the record
    words: str  # how explanations and pages name a fact of the kind: "a condition"
    code_paths: dict[str, tuple[str, ...]]  # resource type -> elements read for codes
    date_paths: dict[str, tuple[Path, ...]]  # resource type -> date elements, preferred first
    statuses: tuple[StatusRow, ...] = ()
    prefetch: tuple[PrefetchQuery, ...] = ()
    takes_status: bool = False  # a fact may say ``status: active|current|any``
    needs_valueset: bool = True  # a fact without a value set reads every resource of the kind
    value_tests: bool = False  # value, interpretation, component and trend apply
    absence_claimed: bool = False  # rules claim its absence ("no bone-modifying agent")
    current_words: str = "current"  # the words for ``status: active|current``


def _row(
    kind: str,
    resource: str,
    element: str,
    query: str,
    codes: tuple[str, ...],
    absent: bool,
    why: str,
) -> StatusRow:
    return StatusRow(kind, resource, element, query, frozenset(codes), absent, why)


_P = "{{context.patientId}}"
_MEDICATION_TYPES = ("MedicationRequest", "MedicationStatement", "MedicationAdministration")
_EFFECTIVE: tuple[Path, ...] = (("effectiveDateTime",), ("effectivePeriod", "start"))

_BUILT_IN: tuple[FactKind, ...] = (
    FactKind(
        "condition",
        ("Condition",),
        "a condition",
        {"Condition": ("code",)},
        {"Condition": (("onsetDateTime",), ("onsetPeriod", "start"), ("recordedDate",))},
        statuses=(
            _row(
                "condition",
                "Condition",
                "verificationStatus",
                "any",
                ("confirmed",),
                True,
                "known disease; provisional, differential, unconfirmed are suspicions, "
                "refuted and entered-in-error are not facts",
            ),
            _row(
                "condition",
                "Condition",
                "clinicalStatus",
                "current",
                ("active", "recurrence", "relapse"),
                True,
                "absent counts only without an abatement[x]",
            ),
        ),
        prefetch=(PrefetchQuery("conditions", "Condition"),),
        takes_status=True,
        current_words="currently active",
    ),
    FactKind(
        "observation",
        ("Observation",),
        "an observation",
        {"Observation": ("code",)},
        {"Observation": (*_EFFECTIVE, ("effectiveInstant",), ("issued",))},
        statuses=(
            _row(
                "observation",
                "Observation",
                "status",
                "any",
                ("final", "amended", "corrected"),
                False,
                "a result, not a preliminary or cancelled one",
            ),
        ),
        prefetch=(PrefetchQuery("observations", "Observation", by_code=True),),
        value_tests=True,
    ),
    FactKind(
        "medication",
        _MEDICATION_TYPES,
        "a medication (requested, taken or given)",
        # a medicationReference is read through the Medication's code and ingredients
        dict.fromkeys(_MEDICATION_TYPES, ("medicationCodeableConcept", "medicationReference")),
        {
            "MedicationRequest": (("authoredOn",),),
            "MedicationStatement": (*_EFFECTIVE, ("dateAsserted",)),
            "MedicationAdministration": _EFFECTIVE,
        },
        statuses=(
            _row(
                "medication",
                "MedicationRequest",
                "status",
                "any",
                ("active", "on-hold", "completed", "stopped", "unknown"),
                False,
                "ordered at some time (not draft, cancelled or entered-in-error)",
            ),
            _row(
                "medication",
                "MedicationRequest",
                "status",
                "current",
                ("active", "on-hold"),
                False,
                "a current order",
            ),
            _row(
                "medication",
                "MedicationStatement",
                "status",
                "any",
                ("active", "completed", "intended", "stopped", "on-hold", "unknown"),
                False,
                "taken at some time (not not-taken or entered-in-error)",
            ),
            _row(
                "medication",
                "MedicationStatement",
                "status",
                "current",
                ("active", "intended", "on-hold"),
                False,
                "being taken",
            ),
            _row(
                "medication",
                "MedicationAdministration",
                "status",
                "any",
                ("in-progress", "on-hold", "completed", "stopped", "unknown"),
                False,
                "given at some time (not not-done or entered-in-error)",
            ),
            _row(
                "medication",
                "MedicationAdministration",
                "status",
                "current",
                ("in-progress", "on-hold"),
                False,
                "being given",
            ),
        ),
        # Each asks for the Medication resources its entries reference (R4 search parameter
        # "medication" of each type), so a medicationReference is read, not lost.
        prefetch=tuple(
            PrefetchQuery(key, rtype, f"&_include={rtype}:medication")
            for key, rtype in (
                ("medicationRequests", "MedicationRequest"),
                ("medicationStatements", "MedicationStatement"),
                ("medicationAdministrations", "MedicationAdministration"),
            )
        ),
        takes_status=True,
        absence_claimed=True,
    ),
    FactKind(
        "procedure",
        ("Procedure",),
        "a procedure",
        {"Procedure": ("code",)},
        {"Procedure": (("performedDateTime",), ("performedPeriod", "start"))},
        statuses=(
            _row(
                "procedure",
                "Procedure",
                "status",
                "any",
                ("completed", "in-progress"),
                False,
                "done or being done",
            ),
        ),
        prefetch=(PrefetchQuery("procedures", "Procedure"),),
        absence_claimed=True,
    ),
    FactKind(
        "document",
        ("DocumentReference",),
        "a document",
        {"DocumentReference": ("type", "category")},
        {"DocumentReference": (("date",), ("context", "period", "start"))},
        statuses=(
            _row(
                "document",
                "DocumentReference",
                "status",
                "any",
                ("current",),
                True,
                "and docStatus is not entered-in-error",
            ),
        ),
        prefetch=(PrefetchQuery("documents", "DocumentReference", "&status=current"),),
        absence_claimed=True,
    ),
    FactKind(
        "research-subject",
        ("ResearchSubject",),
        "enrolment in a research study",
        {"ResearchSubject": ("code",)},
        {"ResearchSubject": (("period", "start"),)},
        statuses=(
            _row(
                "research-subject",
                "ResearchSubject",
                "status",
                "any",
                (
                    "on-study",
                    "on-study-intervention",
                    "on-study-observation",
                    "follow-up",
                    "pending-on-study",
                ),
                False,
                "taking part in a study",
            ),
        ),
        prefetch=(PrefetchQuery("researchSubjects", "ResearchSubject"),),
        needs_valueset=False,
    ),
    FactKind(
        "service-request",
        ("ServiceRequest",),
        "an order",
        {"ServiceRequest": ("code",)},
        {"ServiceRequest": (("authoredOn",), ("occurrenceDateTime",))},
        statuses=(
            _row(
                "service-request",
                "ServiceRequest",
                "status",
                "any",
                ("active", "completed", "on-hold"),
                False,
                "requested (not draft, revoked or entered-in-error)",
            ),
        ),
        prefetch=(PrefetchQuery("serviceRequests", "ServiceRequest"),),
        absence_claimed=True,
    ),
    # Filled from context.draftOrders, not from the record; a draft counts unless it was
    # entered in error.
    FactKind("draft-order", (), "a draft order being placed", {}, {}),
    FactKind(
        "imaging",
        ("DiagnosticReport", "ImagingStudy"),
        "an imaging report or study",
        {"DiagnosticReport": ("code",), "ImagingStudy": ("procedureCode", "modality")},
        {
            "DiagnosticReport": (*_EFFECTIVE, ("issued",)),
            "ImagingStudy": (("started",),),
        },
        statuses=(
            _row(
                "imaging",
                "DiagnosticReport",
                "status",
                "any",
                ("final", "amended", "corrected", "appended"),
                False,
                "a report that was issued (not registered, partial, preliminary or cancelled)",
            ),
            _row(
                "imaging",
                "ImagingStudy",
                "status",
                "any",
                ("available",),
                False,
                "a study whose images exist (not registered, cancelled or entered-in-error)",
            ),
        ),
        # DiagnosticReports are asked for by the codes the rules read, like Observations: a
        # chart's reports carry their notes, and all of them can be megabytes.
        prefetch=(
            PrefetchQuery("diagnosticReports", "DiagnosticReport", by_code=True),
            # A study's series and instances (most of its bytes: a Synthea chart's studies
            # are megabytes) are never read, and a study has no code search: ask for what is.
            PrefetchQuery("imagingStudies", "ImagingStudy", elements_read_only=True),
        ),
        absence_claimed=True,
    ),
)

KINDS: dict[str, FactKind] = {}
# Resource type -> the kind it is sorted into; resource type -> its date paths. Both are kept
# in step with KINDS by register (and mutated in place, so a module holding them sees a change).
KIND_OF_TYPE: dict[str, str] = {}
DATE_PATHS: dict[str, tuple[Path, ...]] = {}
# Dates of resources that are not facts but whose date is read (repeat limits, suppression).
_OTHER_DATE_PATHS: dict[str, tuple[Path, ...]] = {
    "Encounter": (("period", "start"),),
    "CommunicationRequest": (("authoredOn",),),
}


def register(kind: FactKind) -> FactKind:
    """Add ``kind`` to the registry (refused if its name or a resource type is taken)."""
    if kind.name in KINDS:
        raise ValueError(f"fact kind {kind.name!r} is already registered")
    taken = [rtype for rtype in kind.resource_types if rtype in KIND_OF_TYPE]
    if taken:
        raise ValueError(f"resource types {taken} already belong to another fact kind")
    KINDS[kind.name] = kind
    for rtype in kind.resource_types:
        KIND_OF_TYPE[rtype] = kind.name
        DATE_PATHS[rtype] = kind.date_paths.get(rtype, ())
    return kind


def unregister(name: str) -> None:
    """Remove a kind registered by :func:`register` (tests register kinds of their own)."""
    kind = KINDS.pop(name)
    for rtype in kind.resource_types:
        KIND_OF_TYPE.pop(rtype, None)
        DATE_PATHS.pop(rtype, None)
        if rtype in _OTHER_DATE_PATHS:
            DATE_PATHS[rtype] = _OTHER_DATE_PATHS[rtype]


DATE_PATHS.update(_OTHER_DATE_PATHS)
for _kind in _BUILT_IN:
    register(_kind)


def read_elements(kind: FactKind, resource_type: str) -> tuple[str, ...]:
    """The top-level elements of ``resource_type`` the service reads as a fact of ``kind``: the
    codes, the dates, the status elements, and the patient's element (whose record it is; the
    guard in :mod:`cds.engine.record_guard` reads it). A server returns ``id`` and ``meta``
    anyway."""
    elements = {
        *kind.code_paths.get(resource_type, ()),
        *(path[0] for path in kind.date_paths.get(resource_type, ())),
        *(row.element for row in kind.statuses if row.resource == resource_type),
        PATIENT_ELEMENT.get(resource_type, "subject"),
    }
    return tuple(sorted(elements))


def resource_date(resource: dict[str, Any]) -> datetime | None:
    """The clinically relevant date of a resource (onset, effective, performed, authored)."""
    return first_date(resource, DATE_PATHS.get(str(resource.get("resourceType")), ()))
