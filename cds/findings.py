"""One card per finding: the fired rules of a call become the cards to show, in urgency order.

Three relations, declared in the rule files so that a reviewer reads them beside the logic:

- ``supersedes: [rule, ...]``: when this rule fires, the listed rules' cards are not shown; the
  superseding card names what it covers (a critical cord-compression card replaces the
  bone-pain warning).
- ``finding: {id, item}``: rules of one finding (``knowledge/findings.yaml``) that fire together
  give one merged card listing each rule's item (the metastatic care-planning gaps).
- ``distinct_from: [rule, ...]``: reviewed, the two rules are about different findings (or
  their logic excludes each other), so both cards may show.

:func:`overlap_problems` is the load-time check: two active rules on a common hook whose
triggers can rest on the same code must declare one of these relations (see
``docs/alert-burden.md`` for what the check proves and what it cannot).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cds.logic import Node
from cds.rules import Finding, Rule
from cds.terminology import CompiledValueSet

if TYPE_CHECKING:  # the knowledge loader imports this module, and the engine imports it
    from cds.engine import Fired

__all__ = [
    "INDICATOR_RANK",
    "CardFinding",
    "fingerprint",
    "overlap_problems",
    "resolve_findings",
    "trigger_codes",
]

INDICATOR_RANK = {"critical": 0, "warning": 1, "info": 2}

# Definitions that say who a rule is for, not what it found: every rule reads one of them, so
# sharing them is not sharing a finding.
POPULATION_DEFINITIONS = frozenset(
    {
        "invasive-breast-cancer",
        "metastatic-breast-cancer",
        "metastatic-or-recurrent-breast-cancer",
        "distant-metastasis",
    }
)


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


# --- the load-time check ----------------------------------------------------------------------


def _positive_valuesets(node: Node, definitions: Mapping[str, Node], seen: set[str]) -> set[str]:
    """Value sets whose codes can make ``node`` hold: negations and population definitions
    are left out (an absence or the patient's cancer is not a finding)."""
    out: set[str] = set()
    if node.not_ is not None:
        return out
    if node.ref is not None:
        if node.ref in POPULATION_DEFINITIONS or node.ref in seen or node.ref not in definitions:
            return out
        seen.add(node.ref)
        return _positive_valuesets(definitions[node.ref], definitions, seen)
    fact = node.fact()
    if fact is not None:
        return set(fact[1].valuesets())
    for child in (*(node.all_ or ()), *(node.any_ or ())):
        out |= _positive_valuesets(child, definitions, seen)
    return out


def trigger_codes(
    rule: Rule, definitions: Mapping[str, Node], valuesets: Mapping[str, CompiledValueSet]
) -> frozenset[tuple[str, str]]:
    """The (system, code or ICD-10-CM family) keys a record can match to fire ``rule``."""
    keys: set[tuple[str, str]] = set()
    for node in rule.logic.inclusion:
        for vs in _positive_valuesets(node, definitions, set()):
            if vs in valuesets:
                keys |= valuesets[vs].keys()
    return frozenset(keys)


def _share_a_code(a: frozenset[tuple[str, str]], b: frozenset[tuple[str, str]]) -> bool:
    """True when some code can match both: equal keys, or one key is a family of the other."""
    if not a.isdisjoint(b):
        return True
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    for system, code in small:
        for n in range(3, len(code)):
            if (system, code[:n]) in large:
                return True
    for system, code in large:
        for n in range(3, len(code)):
            if (system, code[:n]) in small:
                return True
    return False


def related(a: Rule, b: Rule) -> bool:
    """Whether a relation between the two rules is declared, in either file."""
    if b.id in a.supersedes or a.id in b.supersedes:
        return True
    if b.id in a.distinct_from or a.id in b.distinct_from:
        return True
    return a.finding is not None and b.finding is not None and a.finding.id == b.finding.id


def overlap_problems(
    rules: Mapping[str, Rule],
    definitions: Mapping[str, Node],
    valuesets: Mapping[str, CompiledValueSet],
    findings: Mapping[str, Finding],
) -> list[tuple[str, str]]:
    """(rule id, message) for every undeclared overlap and every broken reference."""
    problems: list[tuple[str, str]] = []
    for rule in rules.values():
        for other in (*rule.supersedes, *rule.distinct_from):
            if other not in rules:
                problems.append((rule.id, f"names unknown rule {other!r}"))
            elif other == rule.id:
                problems.append((rule.id, "relates to itself"))
        if rule.finding is not None and rule.finding.id not in findings:
            problems.append((rule.id, f"finding: unknown finding {rule.finding.id!r}"))
        for name in rule.repeat_resets_on:
            if name not in definitions:
                problems.append((rule.id, f"repeat_resets_on: unknown definition {name!r}"))
    active = [r for r in rules.values() if r.status == "active"]
    codes = {r.id: trigger_codes(r, definitions, valuesets) for r in active}
    for index, a in enumerate(active):
        for b in active[index + 1 :]:
            if not set(a.hooks) & set(b.hooks) or related(a, b):
                continue
            if _share_a_code(codes[a.id], codes[b.id]):
                problems.append(
                    (
                        a.id,
                        f"can fire on the same coded record as {b.id!r} (a shared trigger code) "
                        "but declares no relation: add supersedes, a shared finding, or "
                        "distinct_from to one of the two rules",
                    )
                )
    return problems
