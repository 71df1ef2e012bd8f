"""Which status values make a resource count as a fact: one table, per fact kind.

The engine reads its status filters from :func:`table`, the rows the fact kinds declare
(:mod:`cds.kb.fact_kinds`), and ``docs/record-reading.md`` shows
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

from cds.kb.fact_kinds import KINDS, StatusRow

__all__ = ["StatusRow", "counts", "markdown", "row", "table"]


def table() -> tuple[StatusRow, ...]:
    """Every kind's status rows, in the registry's order."""
    return tuple(r for kind in KINDS.values() for r in kind.statuses)


def row(resource: str, element: str, query: str = "any") -> StatusRow:
    """The row for ``resource.element`` under ``query`` ("current" falls back to "any")."""
    rows = {(r.resource, r.element, r.query): r for r in table()}
    found = rows.get((resource, element, query)) or rows.get((resource, element, "any"))
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
    for r in table():
        codes = ", ".join(sorted(r.codes))
        absent = "yes" if r.absent_counts else "no"
        lines.append(
            f"| {r.kind} | {r.resource} | {r.element} | {r.query} | {codes} | {absent} | {r.why} |"
        )
    return "\n".join(lines)
