"""Repeat limits and safe suppression: which of a call's cards this patient should see again.

A card (a rule's, or a finding's merged card) is identified for a patient by its key and the
fingerprint of the facts that fired it (:func:`cds.call.findings.fingerprint`). It is withheld:

- as a **repeat** when the same facts were shown to this patient within the card's interval
  (the rule's ``repeat_interval``, else by indicator: info 30 days, warning 1 day; critical
  cards are never limited). New or changed facts give a new fingerprint: the card shows.
- as **suppressed** when a clinician dismissed the card on these same facts with a
  suppressing override reason within ``CDS_SUPPRESSION_DAYS``. Critical cards never are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cds.call.findings import CardFinding
from cds.engine.evaluate import evaluate
from cds.engine.record import PatientRecord
from cds.kb.loader import Knowledge
from cds.protocol.fhir_dates import parse_duration
from cds.store.protocol import CardHistory

__all__ = [
    "DEFAULT_INTERVALS",
    "Limited",
    "apply_limits",
    "longest_interval",
    "repeat_interval",
    "with_reset_facts",
]

DEFAULT_INTERVALS: dict[str, timedelta | None] = {
    "info": timedelta(days=30),
    "warning": timedelta(days=1),
    "critical": None,
}


def repeat_interval(finding: CardFinding) -> timedelta | None:
    """How long the same card is not shown again; None: no limit. A merged card takes the
    shortest interval of its rules, so that no member is held back longer than its own."""
    if finding.indicator == "critical":
        return None
    intervals: list[timedelta] = []
    for rule in finding.rules:
        if rule.repeat_interval is not None:
            interval = parse_duration(rule.repeat_interval)
        else:
            interval = DEFAULT_INTERVALS[rule.card.indicator] or timedelta(0)
        intervals.append(interval)
    shortest = min(intervals, default=timedelta(0))
    return shortest if shortest > timedelta(0) else None


def longest_interval(findings: Iterable[CardFinding]) -> timedelta:
    """The history a call needs to look at."""
    return max((repeat_interval(f) or timedelta(0) for f in findings), default=timedelta(0))


@dataclass
class Limited:
    shown: list[CardFinding] = field(default_factory=list)
    withheld: list[tuple[CardFinding, str]] = field(default_factory=list)  # (card, reason)


def apply_limits(
    findings: Iterable[CardFinding],
    history: Mapping[str, CardHistory],
    now: datetime,
    *,
    repeats: bool = True,
) -> Limited:
    """``repeats=False`` (``CDS_REPEAT_LIMITS=false``) keeps suppression, drops repeat limits."""
    out = Limited()
    for finding in findings:
        seen = history.get(finding.key)
        if seen is None:
            out.shown.append(finding)
            continue
        fingerprint = finding.fingerprint
        interval = repeat_interval(finding)
        last = seen.last_shown.get(fingerprint)
        if finding.indicator != "critical" and fingerprint in seen.suppressed:
            out.withheld.append((finding, "suppressed"))
        elif repeats and interval is not None and last is not None and now - last < interval:
            out.withheld.append((finding, "repeat"))
        else:
            out.shown.append(finding)
    return out


def with_reset_facts(
    knowledge: Knowledge, findings: list[CardFinding], record: PatientRecord
) -> list[CardFinding]:
    """Findings whose rules name ``repeat_resets_on`` definitions, with those definitions'
    facts added to what their fingerprint covers; the others as they are."""
    out = []
    for finding in findings:
        probes = [p for rule in finding.rules for p in knowledge.reset_probes_of(rule)]
        if probes:
            context = tuple(evaluate(knowledge, probes, record).fired)
            finding = dataclasses.replace(finding, context=context)
        out.append(finding)
    return out
