"""Relations between rules that can fire on one finding, checked when the knowledge loads.

A rule declares ``supersedes``, ``finding`` or ``distinct_from`` (see :mod:`cds.call.findings`
for what each does to the cards). :func:`overlap_problems` refuses two active rules on a common
hook whose triggers can rest on the same code and that declare none of them
(``docs/alert-burden.md`` says what the check proves and what it cannot).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cds.kb.logic import Node, walk
from cds.kb.schemas import Finding, Rule
from cds.kb.terminology import CompiledValueSet

__all__ = ["POPULATION_DEFINITIONS", "overlap_problems", "related", "trigger_codes"]

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


def _positive_valuesets(nodes: Iterable[Node], definitions: Mapping[str, Node]) -> set[str]:
    """Value sets whose codes can make ``nodes`` hold: negations and population definitions
    are left out (an absence or the patient's cancer is not a finding), and so are anchors."""
    out: set[str] = set()
    for node in walk(
        nodes,
        definitions,
        anchors=False,
        negations=False,
        enter=lambda name: name not in POPULATION_DEFINITIONS,
    ):
        fact = node.fact()
        if fact is not None:
            out.update(fact[1].valuesets())
    return out


def trigger_codes(
    rule: Rule, definitions: Mapping[str, Node], valuesets: Mapping[str, CompiledValueSet]
) -> frozenset[tuple[str, str]]:
    """The (system, code or ICD-10-CM family) keys a record can match to fire ``rule``."""
    keys: set[tuple[str, str]] = set()
    for vs in _positive_valuesets(rule.logic.inclusion, definitions):
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
