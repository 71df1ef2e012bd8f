"""Which status values make a resource count as a fact: one table, per fact kind.

The engine reads its status filters from :data:`TABLE`, and ``docs/record-reading.md`` shows
the same table (:func:`markdown`; a test keeps the two equal). Codes are R4's required value
sets; a status outside a row's codes does not count (so an STU3 or R5 code is never taken for
an R4 one). Where a row says "absent counts", a resource without that element counts.

Condition verification: a disease is *known* only when it is confirmed or carries no
verificationStatus (most EHR problem lists send none). Provisional, differential and
unconfirmed conditions are suspicions: no rule counts them today, so a provisional metastasis
neither hides a symptom's work-up card nor fires the metastatic planning cards. A rule that
should act on a suspicion would have to say so in its logic.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TABLE", "StatusRow", "counts", "markdown", "row"]


@dataclass(frozen=True)
class StatusRow:
    kind: str  # the fact kind (cds.kb.logic.FACT_KINDS)
    resource: str  # the resource type
    element: str  # the element read
    query: str  # the queries the row applies to: "any" or "current" (status: current/active)
    codes: frozenset[str]  # the values that count
    absent_counts: bool  # whether a resource without the element counts
    why: str


def _codes(*codes: str) -> frozenset[str]:
    return frozenset(codes)


TABLE: tuple[StatusRow, ...] = (
    StatusRow(
        "condition",
        "Condition",
        "verificationStatus",
        "any",
        _codes("confirmed"),
        True,
        "known disease; provisional, differential, unconfirmed are suspicions, "
        "refuted and entered-in-error are not facts",
    ),
    StatusRow(
        "condition",
        "Condition",
        "clinicalStatus",
        "current",
        _codes("active", "recurrence", "relapse"),
        True,
        "absent counts only without an abatement[x]",
    ),
    StatusRow(
        "observation",
        "Observation",
        "status",
        "any",
        _codes("final", "amended", "corrected"),
        False,
        "a result, not a preliminary or cancelled one",
    ),
    StatusRow(
        "medication",
        "MedicationRequest",
        "status",
        "any",
        _codes("active", "on-hold", "completed", "stopped", "unknown"),
        False,
        "ordered at some time (not draft, cancelled or entered-in-error)",
    ),
    StatusRow(
        "medication",
        "MedicationRequest",
        "status",
        "current",
        _codes("active", "on-hold"),
        False,
        "a current order",
    ),
    StatusRow(
        "medication",
        "MedicationStatement",
        "status",
        "any",
        _codes("active", "completed", "intended", "stopped", "on-hold", "unknown"),
        False,
        "taken at some time (not not-taken or entered-in-error)",
    ),
    StatusRow(
        "medication",
        "MedicationStatement",
        "status",
        "current",
        _codes("active", "intended", "on-hold"),
        False,
        "being taken",
    ),
    StatusRow(
        "medication",
        "MedicationAdministration",
        "status",
        "any",
        _codes("in-progress", "on-hold", "completed", "stopped", "unknown"),
        False,
        "given at some time (not not-done or entered-in-error)",
    ),
    StatusRow(
        "medication",
        "MedicationAdministration",
        "status",
        "current",
        _codes("in-progress", "on-hold"),
        False,
        "being given",
    ),
    StatusRow(
        "procedure",
        "Procedure",
        "status",
        "any",
        _codes("completed", "in-progress"),
        False,
        "done or being done",
    ),
    StatusRow(
        "document",
        "DocumentReference",
        "status",
        "any",
        _codes("current"),
        True,
        "and docStatus is not entered-in-error",
    ),
    StatusRow(
        "research-subject",
        "ResearchSubject",
        "status",
        "any",
        _codes(
            "on-study",
            "on-study-intervention",
            "on-study-observation",
            "follow-up",
            "pending-on-study",
        ),
        False,
        "taking part in a study",
    ),
    StatusRow(
        "service-request",
        "ServiceRequest",
        "status",
        "any",
        _codes("active", "completed", "on-hold"),
        False,
        "requested (not draft, revoked or entered-in-error)",
    ),
    StatusRow(
        "imaging",
        "DiagnosticReport",
        "status",
        "any",
        _codes("final", "amended", "corrected", "appended"),
        False,
        "a report that was issued (not registered, partial, preliminary or cancelled)",
    ),
    StatusRow(
        "imaging",
        "ImagingStudy",
        "status",
        "any",
        _codes("available"),
        False,
        "a study whose images exist (not registered, cancelled or entered-in-error)",
    ),
)

_ROWS = {(r.resource, r.element, r.query): r for r in TABLE}


def row(resource: str, element: str, query: str = "any") -> StatusRow:
    """The row for ``resource.element`` under ``query`` ("current" falls back to "any")."""
    found = _ROWS.get((resource, element, query)) or _ROWS.get((resource, element, "any"))
    if found is None:
        raise KeyError(f"no status row for {resource}.{element}")
    return found


def counts(value: str | None, status_row: StatusRow) -> bool:
    """True when ``value`` (None: the element is absent) counts under ``status_row``."""
    if value is None:
        return status_row.absent_counts
    return value in status_row.codes


def markdown() -> str:
    """The table as Markdown, as ``docs/record-reading.md`` shows it."""
    lines = [
        "| fact kind | resource | element | query | counts | absent counts | why |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in TABLE:
        codes = ", ".join(sorted(r.codes))
        absent = "yes" if r.absent_counts else "no"
        lines.append(
            f"| {r.kind} | {r.resource} | {r.element} | {r.query} | {codes} | {absent} | {r.why} |"
        )
    return "\n".join(lines)
