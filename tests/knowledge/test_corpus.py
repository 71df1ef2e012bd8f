"""The knowledge corpus as a whole: what every active rule must carry, and nothing left over.

Decisions recorded here (and in the README):

- An active rule needs cases of every kind: ``in-`` (fires), ``out-`` (does not), one
  ``exclusion-`` case per exclusion entry, a ``missing-`` case (data absent: never a card) and
  a ``null-`` case (the EHR says it has no data: may fire a rule about something missing).
  ``in-`` cases must fire; ``out-`` and ``exclusion-`` cases must not. A rule with a time
  window (``within``/``older_than``) or a threshold (numeric value, component value, trend,
  count of 2 or more, an age limit), in its own logic or in a definition it uses, also needs
  ``boundary-`` cases: at least two, at least one on each side of the edge (one that fires,
  one that does not).
- Orphans **fail**: a value set, card template or definition that no rule reaches is text a
  clinician would review for nothing, and it usually means a rule was renamed or dropped.
  Education pages are not orphans when unlinked: the service serves them on their own.
- Retired and draft rules are exempt from the case requirements, but their cases still run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cds.kb.loader import Knowledge
from cds.kb.logic import FactQuery, Node, walk
from cds.kb.schemas import Case, Rule
from tests.conftest import REPO

RULES_DIR = REPO / "knowledge" / "rules"


def _active(knowledge: Knowledge) -> list[Rule]:
    return [r for r in knowledge.rules.values() if r.status == "active"]


def _reachable_nodes(knowledge: Knowledge, roots: tuple[Node, ...]) -> Iterator[Node]:
    """Every node a rule evaluates: its own, and those of definitions it references or anchors."""
    return walk(roots, knowledge.definitions)


def _rule_nodes(knowledge: Knowledge, rule: Rule) -> list[Node]:
    return list(_reachable_nodes(knowledge, (*rule.logic.inclusion, *rule.logic.exclusion)))


def _has_edge(query: FactQuery) -> bool:
    numeric = [query.value, *(test.value for test in query.component_tests())]
    return bool(
        query.within
        or query.older_than
        or query.trend
        or (query.count and query.count.at_least >= 2)
        or any(v is not None and v.valueset is None for v in numeric)
    )


def needs_boundary_cases(knowledge: Knowledge, rule: Rule) -> bool:
    for node in _rule_nodes(knowledge, rule):
        fact = node.fact()
        if fact is not None and _has_edge(fact[1]):
            return True
        if node.patient is not None and (
            node.patient.age_at_least is not None or node.patient.age_below is not None
        ):
            return True
    return False


def _kinds(cases: tuple[Case, ...]) -> Counter[str]:
    return Counter(case.name.split("-", 1)[0] for case in cases)


def _case_problems(knowledge: Knowledge, rule: Rule) -> list[str]:
    cases = knowledge.cases.get(rule.id, ())
    kinds = _kinds(cases)
    problems = [f"no {kind}- case" for kind in ("in", "out", "missing", "null") if kinds[kind] == 0]
    if kinds["exclusion"] < len(rule.logic.exclusion):
        problems.append(
            f"{len(rule.logic.exclusion)} exclusion entries but {kinds['exclusion']} "
            "exclusion- cases"
        )
    if needs_boundary_cases(knowledge, rule):
        boundary = [c for c in cases if c.name.startswith("boundary-")]
        sides = {c.expect.fires for c in boundary if c.expect.status == 200}
        if len(boundary) < 2 or sides != {True, False}:
            problems.append(
                "has a time window or threshold: needs boundary- cases on both sides of the "
                f"edge (has {len(boundary)}, firing sides {sorted(sides, key=str)})"
            )
    for case in cases:
        kind = case.name.split("-", 1)[0]
        expect = case.expect
        if kind == "in" and not (expect.status == 200 and expect.fires):
            problems.append(f"{case.name}: an in- case must expect the rule to fire")
        if kind in ("out", "exclusion") and not (expect.status == 200 and expect.fires is False):
            problems.append(f"{case.name}: an {kind}- case must expect the rule not to fire")
        if kind == "missing" and expect.status == 200 and expect.fires:
            # data that could not be had is never guessed; a null key, by contrast, means "no
            # data" and may well fire a rule about something missing from the record
            problems.append(f"{case.name}: a missing- case must not expect a card")
        if kind == "null" and not case.null_prefetch:
            problems.append(f"{case.name}: a null- case sets null_prefetch")
    return problems


def test_every_active_rule_has_the_required_cases(knowledge: Knowledge) -> None:
    problems = {
        rule.id: found for rule in _active(knowledge) if (found := _case_problems(knowledge, rule))
    }
    assert not problems, "\n".join(f"{rule}: {'; '.join(p)}" for rule, p in problems.items())


def test_every_active_rule_cites_a_section_and_has_a_card_template(knowledge: Knowledge) -> None:
    headings = {s.heading for s in knowledge.source.sections}
    clinical = {s.heading for s in knowledge.source.sections if s.clinical}
    for rule in _active(knowledge):
        assert rule.source.document == knowledge.source.id, rule.id
        assert rule.source.section in headings, rule.id
        assert rule.source.section in clinical, f"{rule.id} cites a non-clinical section"
        assert len(rule.source.summary.split()) >= 5, f"{rule.id}: summary too short"
        assert rule.card.template in knowledge.templates, rule.id


def test_every_active_rule_runs_in_a_service(knowledge: Knowledge) -> None:
    in_services = {rule.id for s in knowledge.services.values() for rule in s.rules}
    missing = sorted(r.id for r in _active(knowledge) if r.id not in in_services)
    assert not missing, f"active rules that no service runs: {missing}"


def test_every_active_rule_offers_override_reasons(knowledge: Knowledge) -> None:
    bare = sorted(r.id for r in _active(knowledge) if not r.override_reasons)
    assert not bare, f"active rules without override reasons: {bare}"


def _raw_ids(folder: Path, pattern: str) -> list[tuple[str, Any]]:
    out = []
    for path in sorted(folder.glob(pattern)):
        if path.name.endswith(".cases.yaml"):
            continue
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        out.append((path.stem, data.get("id") if isinstance(data, dict) else None))
    return out


@pytest.mark.parametrize(
    "folder",
    [RULES_DIR, REPO / "knowledge" / "valuesets", REPO / "cards" / "templates"],
    ids=["rules", "valuesets", "templates"],
)
def test_ids_are_unique_and_match_file_names(folder: Path) -> None:
    """Read straight from the files, so this holds even if the loader changes."""
    ids = _raw_ids(folder, "*.yaml")
    assert ids, folder
    mismatched = [(stem, found) for stem, found in ids if stem != found]
    assert not mismatched, mismatched
    duplicated = [i for i, n in Counter(found for _, found in ids).items() if n > 1]
    assert not duplicated, duplicated


def test_no_rule_id_is_also_a_case_file_without_its_rule() -> None:
    rules = {p.stem for p in RULES_DIR.glob("*.yaml") if not p.name.endswith(".cases.yaml")}
    cases = {p.name.removesuffix(".cases.yaml") for p in RULES_DIR.glob("*.cases.yaml")}
    assert cases <= rules, sorted(cases - rules)


def _valuesets_used(knowledge: Knowledge) -> set[str]:
    used: set[str] = set()
    roots = [n for r in knowledge.rules.values() for n in (*r.logic.inclusion, *r.logic.exclusion)]
    for node in _reachable_nodes(knowledge, tuple(roots)):
        fact = node.fact()
        if fact is None:
            continue
        used.update(fact[1].valuesets())
    pending = list(used)
    while pending:  # value sets pulled in by `include`
        for included in knowledge.valueset_files[pending.pop()].include:
            if included not in used:
                used.add(included)
                pending.append(included)
    return used


def test_every_value_set_is_used(knowledge: Knowledge) -> None:
    orphans = sorted(set(knowledge.valuesets) - _valuesets_used(knowledge))
    assert not orphans, f"value sets no rule or definition uses: {orphans}"


def test_every_card_template_is_used(knowledge: Knowledge) -> None:
    used = {rule.card.template for rule in knowledge.rules.values()}
    used |= {finding.template for finding in knowledge.findings.values()}
    orphans = sorted(set(knowledge.templates) - used)
    assert not orphans, f"card templates no rule uses: {orphans}"


def test_every_definition_is_used(knowledge: Knowledge) -> None:
    roots = [n for r in knowledge.rules.values() for n in (*r.logic.inclusion, *r.logic.exclusion)]
    reached: set[str] = set()
    for node in _reachable_nodes(knowledge, tuple(roots)):
        if node.ref:
            reached.add(node.ref)
        fact = node.fact()
        if fact is not None:
            reached.update(a.name for a in (fact[1].after, fact[1].before) if a is not None)
    orphans = sorted(set(knowledge.definitions) - reached)
    assert not orphans, f"definitions no rule uses: {orphans}"
