"""One card per finding: the fired rules of a call become the cards to show, in urgency order.

Three relations, declared in the rule files so that a reviewer reads them beside the logic:

- ``supersedes: [rule, ...]``: when this rule fires, the listed rules' cards are not shown; the
  superseding card names what it covers (a critical cord-compression card replaces the
  bone-pain warning).
- ``finding: {id, item}``: rules of one finding (``knowledge/findings.yaml``) that fire together
  give one merged card listing each rule's item (the metastatic care-planning gaps).
- ``distinct_from: [rule, ...]``: reviewed, the two rules are about different findings (or
  their logic excludes each other), so both cards may show.

The load-time check that two rules able to fire on one coded record declare a relation is
:mod:`cds.kb.finding_relations`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cds.engine.evaluate import Fired
from cds.kb.card_parts import INDICATOR_RANK
from cds.kb.schemas import Finding, Rule

__all__ = [
    "INDICATOR_RANK",
    "CardFinding",
    "fingerprint",
    "resolve_findings",
]


@dataclass(frozen=True)
class CardFinding:
    """One card to show: one fired rule, or the fired members of a finding merged.

    ``key`` identifies the card for the shown-card log, feedback, repeat limits and
    suppression: the rule id, or the finding id of a merged card.
    """

    key: str
    fired: tuple[Fired, ...]  # the lead first
    indicator: str
    covers: tuple[Rule, ...] = ()  # fired rules whose cards this one replaces
    finding: Finding | None = None  # set on a merged card
    context: tuple[Fired, ...] = ()  # facts of the rules' repeat_resets_on definitions

    @property
    def lead(self) -> Fired:
        return self.fired[0]

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(f.rule for f in self.fired)

    @property
    def fingerprint(self) -> str:
        return fingerprint((*self.fired, *self.context))


def fingerprint(fired: Iterable[Fired]) -> str:
    """A digest of the facts that fired a card: the rules, each cited resource with its value
    and date, and each absence relied on. Another record, or a changed one, changes it."""
    parts: list[str] = []
    for item in sorted(fired, key=lambda f: f.rule.id):
        parts.append(f"rule:{item.rule.id}")
        parts += sorted(
            f"{e.resource_type}/{e.resource_id}|{e.value or ''}|{e.date or ''}"
            for e in item.evidence
        )
        parts += sorted(f"absent:{note}" for note in item.absent)
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def resolve_findings(fired: Iterable[Fired], findings: Mapping[str, Finding]) -> list[CardFinding]:
    """The cards to show for ``fired``: superseded rules folded into the rule that replaces
    them, members of one finding merged, ordered critical, warning, info (stable otherwise)."""
    fired = list(fired)
    by_id = {f.rule.id: f for f in fired}
    superseded_by: dict[str, str] = {}
    for item in fired:
        for other in item.rule.supersedes:
            if other in by_id and other != item.rule.id:
                superseded_by.setdefault(other, item.rule.id)
    covers: dict[str, list[Rule]] = {}
    for other, by in superseded_by.items():
        # A chain (A replaces B replaces C) folds into the first rule that is itself shown.
        seen = {other}
        while by in superseded_by and by not in seen:
            seen.add(by)
            by = superseded_by[by]
        covers.setdefault(by, []).append(by_id[other].rule)
    shown = [f for f in fired if f.rule.id not in superseded_by]
    groups: dict[str, list[Fired]] = {}
    for item in shown:
        if item.rule.finding is not None and item.rule.finding.id in findings:
            groups.setdefault(item.rule.finding.id, []).append(item)
    out: list[CardFinding] = []
    merged: set[str] = set()
    for item in shown:
        ref = item.rule.finding
        members = groups.get(ref.id, []) if ref is not None else []
        if ref is not None and len(members) > 1:
            if ref.id in merged:
                continue
            merged.add(ref.id)
            out.append(
                CardFinding(
                    key=ref.id,
                    fired=tuple(members),
                    indicator=min(
                        (m.rule.card.indicator for m in members), key=INDICATOR_RANK.__getitem__
                    ),
                    covers=tuple(r for m in members for r in covers.get(m.rule.id, ())),
                    finding=findings[ref.id],
                )
            )
            continue
        out.append(
            CardFinding(
                key=item.rule.id,
                fired=(item,),
                indicator=item.rule.card.indicator,
                covers=tuple(covers.get(item.rule.id, ())),
            )
        )
    out.sort(key=lambda c: INDICATOR_RANK[c.indicator])
    return out
