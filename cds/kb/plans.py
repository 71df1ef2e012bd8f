"""Rule logic compiled once, when the knowledge loads: the plans the engine runs.

:func:`compile_program` turns every rule's inclusion and exclusion, and every definition, into
a tree of plans with all that depends only on the knowledge worked out once: value sets looked
up, durations parsed, the filters a fact applies chosen and put in order, the labels and the
absence lines of explanations worded, the facts an absence claim is about and the names that
hold such a claim back, and each rule's gates. :class:`~cds.kb.loader.Knowledge` keeps the
:class:`Program`; the engine (:mod:`cds.engine.evaluate`) runs a plan against one record and
keeps nothing between calls. A plan is data: each kind of plan and of filter has a number
(``op``) by which the engine picks the function that runs it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from cds.kb.fact_kinds import KINDS, StatusRow
from cds.kb.logic import Anchor, FactQuery, Node, NodeFold, PatientQuery, fold, walk
from cds.kb.logic_text import describe_node
from cds.kb.rule_gates import Gate, rule_gates
from cds.kb.schemas import Definition, Rule
from cds.kb.terminology import CompiledValueSet
from cds.protocol.fhir_dates import parse_duration

__all__ = [
    "AllPlan",
    "AnyPlan",
    "FactPlan",
    "NotPlan",
    "PatientPlan",
    "Plan",
    "Program",
    "RefPlan",
    "RulePlan",
    "compile_program",
    "compile_rule",
    "status_rows",
]

# Plan ops: the engine's table of runners is indexed by these.
ALL, ANY, NOT, REF, FACT, PATIENT = range(6)
# Filter ops, in the order a fact applies them.
(
    STATUS,
    WITHIN,
    OLDER_THAN,
    AFTER,
    BEFORE,
    BODY_SITE,
    COMPONENTS,
    LATEST,
    VALUE,
    INTERPRETATION,
    TREND,
) = range(11)

Filter = tuple[int, Any]  # (filter op, its argument)


@dataclass(frozen=True, slots=True)
class AllPlan:
    op: ClassVar[int] = ALL
    parts: tuple[Plan, ...]


@dataclass(frozen=True, slots=True)
class AnyPlan:
    op: ClassVar[int] = ANY
    parts: tuple[Plan, ...]


@dataclass(frozen=True, slots=True)
class AbsenceFact:
    """A fact under a ``not`` of a kind whose absence is claimed (FactKind.absence_claimed)."""

    kind: str
    query: FactQuery
    status_rows: Mapping[str, StatusRow]
    within: timedelta | None
    # whole-word names of the value set's codes, looked for in an unreadable entry's text
    names: re.Pattern[str] | None


@dataclass(frozen=True, slots=True)
class NotPlan:
    op: ClassVar[int] = NOT
    part: Plan
    absent: str  # the explanation line when nothing was found
    absence_facts: tuple[AbsenceFact, ...]


@dataclass(frozen=True, slots=True)
class RefPlan:
    op: ClassVar[int] = REF
    name: str
    relabel: str | None  # a one-fact definition's facts are named by its description


@dataclass(frozen=True, slots=True)
class FactPlan:
    op: ClassVar[int] = FACT
    kind: str
    valueset: CompiledValueSet | None
    coded: tuple[str, str] | None  # (kind, value set id): the record has a code for it
    filters: tuple[Filter, ...]
    needed: int
    label: str
    after: Anchor | None
    undated_note: str  # when the ``after`` anchor's definition holds without a date


@dataclass(frozen=True, slots=True)
class PatientPlan:
    op: ClassVar[int] = PATIENT
    query: PatientQuery


Plan = AllPlan | AnyPlan | NotPlan | RefPlan | FactPlan | PatientPlan


@dataclass(frozen=True, slots=True)
class RulePlan:
    inclusion: tuple[Plan, ...]
    exclusion: tuple[Plan, ...]
    gates: tuple[Gate, ...]  # see cds.kb.rule_gates


@dataclass(frozen=True)
class Program:
    """Every rule's and every definition's plan, for one knowledge."""

    rules: dict[str, RulePlan]
    definitions: dict[str, Plan]


class _Compiler(NodeFold[Plan]):
    def __init__(
        self,
        definitions: Mapping[str, Node],
        docs: Mapping[str, Definition],
        valuesets: Mapping[str, CompiledValueSet],
    ) -> None:
        self.definitions = definitions
        self.docs = docs
        self.valuesets = valuesets

    def rule(self, rule: Rule) -> RulePlan:
        return RulePlan(
            tuple(self.plan(node) for node in rule.logic.inclusion),
            tuple(self.plan(node) for node in rule.logic.exclusion),
            rule_gates(rule, self.definitions),
        )

    def plan(self, node: Node) -> Plan:
        # no definitions given: a ref compiles to a look-up by name (definitions have plans
        # of their own), so nothing is compiled twice
        return fold(node, self)

    def patient(self, node: Node, query: PatientQuery) -> Plan:
        return PatientPlan(query)

    def all_of(self, node: Node, parts: list[Plan]) -> Plan:
        return AllPlan(tuple(parts))

    def any_of(self, node: Node, parts: list[Plan]) -> Plan:
        return AnyPlan(tuple(parts))

    def none_of(self, node: Node, part: Plan) -> Plan:
        assert node.not_ is not None
        return self.negation(node.not_, part)

    def ref(self, node: Node, name: str, expand: Callable[[], Plan] | None) -> Plan:
        return RefPlan(name, self.relabel(name))

    def relabel(self, name: str) -> str | None:
        definition = self.definitions.get(name)
        fact = definition.fact() if definition is not None else None
        if fact is None or fact[1].label is not None:
            return None
        doc = self.docs.get(name)
        return doc.description if doc else name

    def label(self, node: Node) -> str:
        if node.ref is not None:
            doc = self.docs.get(node.ref)
            return doc.description if doc else node.ref
        fact = node.fact()
        if fact is not None:
            return self.fact_label(*fact)
        return "matching record"

    def fact_label(self, kind: str, query: FactQuery) -> str:
        if query.label:
            return query.label
        if query.valueset:
            return self.valuesets[query.valueset].title.lower()
        return kind.replace("-", " ")

    def negation(self, child: Node, compiled: Plan) -> NotPlan:
        if child.ref is not None or child.fact() is not None:
            absent = f"No {self.label(child)} on record"
        else:
            absent = f"Not on record: {describe_node(child, self.docs)}"
        facts = []
        for sub in walk([child], self.definitions, anchors=False):
            fact = sub.fact()
            if fact is None or not KINDS[fact[0]].absence_claimed:
                continue
            kind, query = fact
            valueset = self.valuesets.get(query.valueset) if query.valueset else None
            facts.append(
                AbsenceFact(
                    kind,
                    query,
                    status_rows(kind, query.status in ("current", "active")),
                    parse_duration(query.within) if query.within else None,
                    _name_pattern(valueset) if valueset is not None else None,
                )
            )
        return NotPlan(compiled, absent, tuple(facts))

    def fact(self, node: Node, kind: str, query: FactQuery) -> Plan:
        valueset = self.valuesets[query.valueset] if query.valueset is not None else None
        undated = ""
        if query.after is not None:
            doc = self.docs.get(query.after.name)
            what = doc.description if doc else query.after.name
            undated = (
                f"Date unknown: {what} has no date on record, so it does not limit this finding"
            )
        return FactPlan(
            kind=kind,
            valueset=valueset,
            coded=(kind, query.valueset) if query.valueset is not None else None,
            filters=self.filters(kind, query),
            needed=query.count.at_least if query.count else 1,
            label=self.fact_label(kind, query),
            after=query.after,
            undated_note=undated,
        )

    def filters(self, kind: str, query: FactQuery) -> tuple[Filter, ...]:
        """The query's filters, in the order they apply; only those the query sets."""
        current = query.status in ("active", "current")
        found: list[Filter] = [(STATUS, (kind, current, status_rows(kind, current)))]
        if query.within is not None:
            found.append((WITHIN, parse_duration(query.within)))
        if query.older_than is not None:
            found.append((OLDER_THAN, parse_duration(query.older_than)))
        if query.after is not None:
            found.append((AFTER, query.after))
        if query.before is not None:
            found.append((BEFORE, query.before))
        if query.body_site is not None:
            found.append((BODY_SITE, query.body_site))
        if query.component_tests():
            found.append((COMPONENTS, query))
        if query.latest:
            found.append((LATEST, None))
        if query.value is not None:
            found.append((VALUE, (query.value, query.valueset)))
        if query.interpretation is not None:
            found.append((INTERPRETATION, frozenset(query.interpretation)))
        if query.trend is not None:
            found.append((TREND, (query.trend, query.valueset)))
        return tuple(found)


def status_rows(kind: str, current: bool) -> dict[str, StatusRow]:
    """Resource type -> the row of its ``status`` element that applies to a fact of ``kind``
    (a current query falls back to the "any" row of a type that has no current one)."""
    rows = KINDS[kind].statuses
    out = {r.resource: r for r in rows if r.element == "status" and r.query == "any"}
    if current:
        out |= {r.resource: r for r in rows if r.element == "status" and r.query == "current"}
    return out


# Names shorter than this are not looked for in free text (too many accidental matches).
_MIN_NAME = 4


def _name_pattern(valueset: CompiledValueSet) -> re.Pattern[str] | None:
    """One case-insensitive, whole-word pattern of the value set's code displays and its
    absence words."""
    displays = {d.strip().lower() for d in valueset.displays.values()}
    names = sorted(n for n in displays | valueset.absence_words if len(n) >= _MIN_NAME)
    if not names:
        return None
    return re.compile(r"\b(?:" + "|".join(re.escape(n) for n in names) + r")\b")


def compile_rule(
    rule: Rule,
    definitions: Mapping[str, Node],
    docs: Mapping[str, Definition],
    valuesets: Mapping[str, CompiledValueSet],
) -> RulePlan:
    """One rule's plan (the loader compiles every rule; the engine only a rule that is not
    one of its knowledge's, as tests and repeat-limit probes make)."""
    return _Compiler(definitions, docs, valuesets).rule(rule)


def compile_program(
    rules: Mapping[str, Rule],
    definitions: Mapping[str, Node],
    docs: Mapping[str, Definition],
    valuesets: Mapping[str, CompiledValueSet],
) -> Program:
    """Every rule's and every definition's plan: what the loader keeps on the knowledge."""
    compiler = _Compiler(definitions, docs, valuesets)
    return Program(
        rules={rule_id: compiler.rule(rule) for rule_id, rule in rules.items()},
        definitions={name: compiler.plan(node) for name, node in definitions.items()},
    )
