"""Evaluate rules against a :class:`~cds.engine.record.PatientRecord`. Pure and deterministic.

``now`` is injected, nothing is read from the clock or the network, and the same record and
knowledge always give the same result. Each fired rule carries its explanation: the resources
that made each inclusion hold and the facts whose absence it relied on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from cds.engine import statuses
from cds.engine.record import Item, PatientRecord, Unclassified
from cds.engine.units import MOLAR_MASS, quantity_in, to_unit
from cds.kb.code_systems import V3_INTERPRETATION
from cds.kb.fact_kinds import KINDS, StatusRow, resource_date
from cds.kb.loader import Knowledge
from cds.kb.logic import (
    ALBUMIN_VALUESET,
    Anchor,
    FactQuery,
    Node,
    PatientQuery,
    TrendTest,
    ValueTest,
    walk,
)
from cds.kb.logic_text import describe_node
from cds.kb.rule_gates import Gate
from cds.kb.schemas import Rule
from cds.kb.terminology import CompiledValueSet, canonical_system, normalize_code
from cds.protocol.fhir_dates import parse_duration

__all__ = ["Evaluation", "Evidence", "Fired", "evaluate"]

# The status filters, from the one table of cds/engine/statuses.py (docs/record-reading.md).
_CONDITION_VERIFIED = statuses.row("Condition", "verificationStatus")
_CONDITION_CURRENT = statuses.row("Condition", "clinicalStatus", "current")
# R4's interpretation code system and the HL7 v2 table 0078 it took its codes (H, HH, L, LL,
# A, AA, ...) from; a coding without a system is read as one of them.
_INTERPRETATION_SYSTEMS = frozenset(
    {
        None,
        V3_INTERPRETATION,
        "http://terminology.hl7.org/CodeSystem/v2-0078",
        "http://hl7.org/fhir/v2/0078",
    }
)
_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Evidence:
    """One resource that made a fact hold, as shown in a card's explanation."""

    label: str
    resource_type: str
    resource_id: str
    display: str
    date: str | None
    value: str | None = None

    def line(self) -> str:
        when = f" on {self.date}" if self.date else ""
        value = f": {self.value}" if self.value else ""
        return (
            f"{self.label}: {self.display}{value}{when} ({self.resource_type}/{self.resource_id})"
        )


@dataclass(frozen=True)
class Fired:
    rule: Rule
    evidence: tuple[Evidence, ...]
    absent: tuple[str, ...]


@dataclass
class Evaluation:
    fired: list[Fired] = field(default_factory=list)
    not_evaluated: dict[str, str] = field(default_factory=dict)  # rule id -> why


class _Result(NamedTuple):
    """A node's outcome. A tuple, not a dataclass: hundreds are made per call."""

    holds: bool
    items: tuple[tuple[str, Item], ...] = ()  # (label, item)
    absent: tuple[str, ...] = ()


_FALSE = _Result(False)
_TRUE = _Result(True)


def _merged(parts: list[_Result]) -> _Result:
    """Results that all hold, as one: their items and absences in order."""
    if len(parts) == 1:
        return parts[0]
    return _Result(
        True,
        tuple([i for p in parts for i in p.items]),
        tuple([a for p in parts for a in p.absent]),
    )


def evaluate(
    knowledge: Knowledge,
    rules: Iterable[Rule],
    record: PatientRecord,
    *,
    suppressed: Collection[str] = (),
    unavailable: dict[str, str] | None = None,
) -> Evaluation:
    """Run ``rules``; ``unavailable`` maps rule ids that lack data to the reason (not run)."""
    evaluation = Evaluation()
    rules = list(rules)
    if record.deceased:
        evaluation.not_evaluated = {rule.id: "patient is deceased" for rule in rules}
        return evaluation
    call = _Call(knowledge, record)
    gates = knowledge.rule_gates
    for rule in rules:
        if unavailable and rule.id in unavailable:
            evaluation.not_evaluated[rule.id] = unavailable[rule.id]
            continue
        if rule.id in suppressed:
            evaluation.not_evaluated[rule.id] = "suppressed after an 'already addressed' override"
            continue
        gate = gates.get(rule.id)
        if gate and knowledge.rules.get(rule.id) is rule and not call.opens(gate):
            continue  # a code the rule needs is not on record: it cannot fire
        fired = call.rule(rule)
        if fired is not None:
            evaluation.fired.append(fired)
    return evaluation


# --- compiling -------------------------------------------------------------------------------
#
# Each node becomes a closure once (``_compiled``), so a call runs the rule logic as plain
# function calls instead of re-inspecting every node: which kind it is, which filters its query
# sets. A closure holds only what the node itself says; whatever depends on the knowledge
# (definitions, value sets, labels) is looked up through the call, so one node compiles the same
# for any knowledge that holds it. Nodes are immutable and outlive every call; each closure is
# kept with its node, so an id reused after a node is collected never matches.

_Step = Callable[["_Call"], _Result]
_Filter = Callable[["_Call", list[Item]], list[Item]]


class _Compiled(NamedTuple):
    node: Node
    step: _Step
    relabelled: bool  # a one-fact node without its own label: a ref names it instead


_COMPILED: dict[int, _Compiled] = {}
_COMPILED_LIMIT = 200_000


def _compiled(node: Node) -> _Compiled:
    entry = _COMPILED.get(id(node))
    if entry is not None and entry.node is node:
        return entry
    fact = node.fact()
    entry = _Compiled(node, _compile(node), fact is not None and fact[1].label is None)
    if len(_COMPILED) >= _COMPILED_LIMIT:
        _COMPILED.clear()
    _COMPILED[id(node)] = entry
    return entry


_RULES: dict[int, tuple[Rule, tuple[_Step, ...], tuple[_Step, ...]]] = {}


def _compiled_rule(rule: Rule) -> tuple[tuple[_Step, ...], tuple[_Step, ...]]:
    """The steps of a rule's inclusion and exclusion, looked up once per rule, not per node."""
    entry = _RULES.get(id(rule))
    if entry is None or entry[0] is not rule:
        logic = rule.logic
        inclusion = tuple(_compiled(node).step for node in logic.inclusion)
        exclusion = tuple(_compiled(node).step for node in logic.exclusion)
        entry = (rule, inclusion, exclusion)
        if len(_RULES) >= _COMPILED_LIMIT:
            _RULES.clear()
        _RULES[id(rule)] = entry
    return entry[1], entry[2]


def _compile(node: Node) -> _Step:
    fact = node.fact()
    if fact is not None:
        return _compile_fact(*fact)
    if node.ref is not None:
        return _compile_ref(node, node.ref)
    if node.all_ is not None:
        return _compile_all(tuple(_compiled(child).step for child in node.all_))
    if node.any_ is not None:
        return _compile_any(tuple(_compiled(child).step for child in node.any_))
    if node.not_ is not None:
        return _compile_not(node.not_)
    assert node.patient is not None  # the schema guarantees exactly one field
    return _compile_patient(node.patient)


class _Call:
    """What one evaluation reads: the knowledge, the record, and definitions already run."""

    __slots__ = ("coded", "definitions", "knowledge", "memo", "now", "record", "valuesets")

    def __init__(self, knowledge: Knowledge, record: PatientRecord) -> None:
        self.knowledge = knowledge
        self.definitions = knowledge.definitions
        self.valuesets = knowledge.valuesets
        self.record = record
        self.now = record.now
        self.memo: dict[str, _Result] = {}
        # (kind, value set) pairs the record has a code for: found once, in one pass over the
        # record's distinct codes, so a fact or a gate asking for anything else costs a lookup.
        index = knowledge.code_index
        self.coded: set[tuple[str, str]] = {
            (kind, valueset)
            for kind in record.coded_kinds()
            for valueset in index.matched_by(*record.code_keys(kind))
        }

    def opens(self, gates: tuple[Gate, ...]) -> bool:
        """True when the record has a code for every gate (see :mod:`cds.kb.rule_gates`)."""
        coded = self.coded
        return all(not coded.isdisjoint(gate) for gate in gates)

    def definition(self, name: str) -> _Result:
        """A definition's result, run once per call (definitions are shared between rules)."""
        result = self.memo.get(name)
        if result is None:
            result = _compiled(self.definitions[name]).step(self)
            self.memo[name] = result
        return result

    def rule(self, rule: Rule) -> Fired | None:
        inclusion, exclusion = _compiled_rule(rule)
        results = []
        for step in inclusion:
            result = step(self)
            if not result.holds:
                return None
            results.append(result)
        for step in exclusion:
            if step(self).holds:
                return None
        evidence: dict[tuple[str, str, str], Evidence] = {}
        absent: list[str] = []
        for result in results:
            for label, item in result.items:
                shown = _evidence(label, item, self.valuesets)
                evidence.setdefault((shown.resource_type, shown.resource_id, label), shown)
            absent.extend(a for a in result.absent if a not in absent)
        return Fired(rule=rule, evidence=tuple(evidence.values()), absent=tuple(absent))

    def anchor(self, anchor: Anchor) -> datetime | None:
        result = self.definition(anchor.name)
        dates = [item.date for _, item in result.items if item.date is not None]
        if not result.holds or not dates:
            return None
        when = min(dates) if anchor.first else max(dates)
        try:
            return when + (parse_duration(anchor.offset) if anchor.offset else timedelta(0))
        except OverflowError:  # a date near the end of the calendar: nothing comes after it
            return None

    def undated(self, anchor: Anchor) -> bool:
        """The anchor's definition holds, but none of its records has a date.

        Such an anchor does not limit an ``after`` filter: the breast cancer is known, only its
        date is not, and a new sign must still be seen (issue 15). The fact then says so.
        """
        result = self.definition(anchor.name)
        return bool(result.holds and result.items) and all(
            item.date is None for _, item in result.items
        )

    def undated_note(self, anchor: Anchor) -> str:
        doc = self.knowledge.definition_docs.get(anchor.name)
        what = doc.description if doc else anchor.name
        return f"Date unknown: {what} has no date on record, so it does not limit this finding"

    def label(self, node: Node) -> str:
        if node.ref is not None:
            doc = self.knowledge.definition_docs.get(node.ref)
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

    def unread_for(self, node: Node) -> _Unread | None:
        """The record's unclassified entries that a fact under ``node`` could have been: of
        its kind, with a status it counts and, for a fact with a window, dated within it (or
        undated). None when there are none. Their words are used here only to hold a claim of
        absence back, never to make a fact hold."""
        entries: dict[int, Unclassified] = {}
        named = False
        for kind, query in _absence_facts(node, self.definitions):
            for entry in self.record.unclassified.get(kind, ()):
                if not self._could_be(entry, kind, query):
                    continue
                entries.setdefault(id(entry), entry)
                if not named and entry.text and query.valueset is not None:
                    pattern = _name_pattern(self.valuesets[query.valueset])
                    named = pattern is not None and pattern.search(entry.text) is not None
        return _Unread(tuple(entries.values()), named) if entries else None

    def _could_be(self, entry: Unclassified, kind: str, query: FactQuery) -> bool:
        status_row = _status_rows(kind, query.status in ("current", "active")).get(entry.rtype)
        raw = entry.resource.get("status")
        if status_row is not None and not statuses.counts(
            raw if isinstance(raw, str) else None, status_row
        ):
            return False
        if query.within is not None:
            when = resource_date(entry.resource)
            return when is None or when >= self.now - parse_duration(query.within)
        return True

    def absent(self, node: Node) -> str:
        """The explanation line for a ``not`` that held."""
        if node.ref is not None or node.fact() is not None:
            return f"No {self.label(node)} on record"
        return f"Not on record: {describe_node(node, self.knowledge.definition_docs)}"


def _compile_ref(node: Node, name: str) -> _Step:
    def ref(call: _Call) -> _Result:
        result = call.definition(name)
        if not result.holds or not _compiled(call.definitions[name]).relabelled:
            return result
        # A one-fact definition is named by its description in explanations.
        label = call.label(node)
        return _Result(True, tuple([(label, item) for _, item in result.items]))

    return ref


def _compile_all(steps: tuple[_Step, ...]) -> _Step:
    def all_(call: _Call) -> _Result:
        parts = []
        for step in steps:
            part = step(call)
            if not part.holds:
                return _FALSE
            parts.append(part)
        return _merged(parts)

    return all_


def _compile_any(steps: tuple[_Step, ...]) -> _Step:
    def any_(call: _Call) -> _Result:
        holding = [part for part in [step(call) for step in steps] if part.holds]
        return _merged(holding) if holding else _FALSE

    return any_


def _compile_not(child: Node) -> _Step:
    inner = _compiled(child).step

    def not_(call: _Call) -> _Result:
        if inner(call).holds:
            return _FALSE
        if not call.record.unclassified:  # the usual call: every entry has a code
            return _Result(True, (), (call.absent(child),))
        unread = call.unread_for(child)
        if unread is None:
            return _Result(True, (), (call.absent(child),))
        if unread.named:  # an entry's words name what is claimed absent: no claim
            return _FALSE
        return _Result(True, (), (f"{call.absent(child)} ({unread.note()})",))

    return not_


def _absence_facts(node: Node, definitions: dict[str, Node]) -> list[tuple[str, FactQuery]]:
    """The facts of kinds absence is claimed about, under ``node`` (through definitions)."""
    return [
        fact
        for sub in walk([node], definitions, anchors=False)
        if (fact := sub.fact()) is not None and KINDS[fact[0]].absence_claimed
    ]


class _Unread(NamedTuple):
    """Entries an absence claim cannot see into (docs/record-reading.md, honest absence)."""

    entries: tuple[Unclassified, ...]
    named: bool  # some entry's text names a member of a value set the claim is about

    def note(self) -> str:
        shown = "; ".join(entry.label() for entry in self.entries[:3])
        more = f"; and {len(self.entries) - 3} more" if len(self.entries) > 3 else ""
        count = len(self.entries)
        return (
            f"{count} entr{'y' if count == 1 else 'ies'} could not be read by code: {shown}{more}"
        )


_NAME_PATTERNS: dict[tuple[int, str], tuple[CompiledValueSet, re.Pattern[str] | None]] = {}
# Names shorter than this are not looked for in free text (too many accidental matches).
_MIN_NAME = 4


def _name_pattern(valueset: CompiledValueSet) -> re.Pattern[str] | None:
    """One case-insensitive, whole-word pattern of the value set's code displays."""
    key = (id(valueset), valueset.id)
    entry = _NAME_PATTERNS.get(key)
    if entry is None or entry[0] is not valueset:
        names = sorted(
            {d.strip().lower() for d in valueset.displays.values() if len(d.strip()) >= _MIN_NAME}
        )
        pattern = (
            re.compile(r"\b(?:" + "|".join(re.escape(n) for n in names) + r")\b") if names else None
        )
        if len(_NAME_PATTERNS) > 4096:
            _NAME_PATTERNS.clear()
        entry = (valueset, pattern)
        _NAME_PATTERNS[key] = entry
    return entry[1]


def _compile_patient(query: PatientQuery) -> _Step:
    def patient(call: _Call) -> _Result:
        record = call.record
        if query.deceased is not None and record.deceased != query.deceased:
            return _FALSE
        if query.sex is not None and record.sex not in query.sex:
            return _FALSE
        age = record.age_years
        if query.age_at_least is not None and (age is None or age < query.age_at_least):
            return _FALSE
        if query.age_below is not None and (age is None or age >= query.age_below):
            return _FALSE
        return _TRUE

    return patient


def _compile_fact(kind: str, query: FactQuery) -> _Step:
    valueset = query.valueset
    filters = _filters(kind, query)
    needed = query.count.at_least if query.count else 1
    after = query.after

    def fact(call: _Call) -> _Result:
        if valueset is not None:
            if (kind, valueset) not in call.coded:  # most facts of most calls
                return _FALSE
            items = call.record.find(kind, call.valuesets[valueset])
        else:
            items = call.record.all_of(kind)
        for narrow in filters:
            if not items:
                return _FALSE
            items = narrow(call, items)
        if len(items) < needed:
            return _FALSE
        label = call.fact_label(kind, query)
        found = tuple([(label, item) for item in items])
        if after is not None and call.undated(after):
            return _Result(True, found, (call.undated_note(after),))
        return _Result(True, found)

    return fact


def _filters(kind: str, query: FactQuery) -> list[_Filter]:
    """The query's filters, in the order they apply; only those the query sets."""
    filters: list[_Filter] = [_status_filter(kind, query)]
    if query.within is not None:
        within = parse_duration(query.within)
        filters.append(lambda call, items: _on_or_after(items, call.now - within))
    if query.older_than is not None:
        older = parse_duration(query.older_than)
        filters.append(lambda call, items: _on_or_before(items, call.now - older))
    if query.after is not None:
        after = query.after
        filters.append(
            lambda call, items: _on_or_after(
                items, _EPOCH if call.undated(after) else call.anchor(after)
            )
        )
    if query.before is not None:
        before = query.before
        filters.append(lambda call, items: _before(items, call.anchor(before)))
    if query.body_site is not None:
        site = query.body_site
        filters.append(lambda call, items: [i for i in items if _body_site_ok(call, i, site)])
    if query.component_tests():
        filters.append(lambda call, items: [i for i in items if _components_ok(call, i, query)])
    if query.latest:
        filters.append(lambda call, items: [max(items, key=_date_key)])
    molar_mass = MOLAR_MASS.get(query.valueset or "")
    if query.value is not None:
        value = query.value
        filters.append(
            lambda call, items: [
                i for i in items if _value_ok(call, i.resource, value, molar_mass, i)
            ]
        )
    if query.interpretation is not None:
        wanted = frozenset(query.interpretation)
        filters.append(
            lambda call, items: [i for i in items if wanted & _interpretations(i.resource)]
        )
    if query.trend is not None:
        trend = query.trend
        filters.append(lambda call, items: _trend(call, items, trend, molar_mass))
    return filters


def _status_filter(kind: str, query: FactQuery) -> _Filter:
    counts = _status_check(kind, query.status in ("active", "current"))

    def status(call: _Call, items: list[Item]) -> list[Item]:
        return [item for item in items if counts(item)]

    return status


def _on_or_after(items: list[Item], anchor: datetime | None) -> list[Item]:
    if anchor is None:
        return []
    return [i for i in items if i.date is not None and i.date >= anchor]


def _on_or_before(items: list[Item], until: datetime) -> list[Item]:
    return [i for i in items if i.date is not None and i.date <= until]


def _before(items: list[Item], anchor: datetime | None) -> list[Item]:
    if anchor is None:
        return []
    return [i for i in items if i.date is not None and i.date < anchor]


def _value_ok(
    call: _Call,
    resource: dict[str, Any],
    test: ValueTest,
    molar_mass: float | None = None,
    item: Item | None = None,
) -> bool:
    if test.valueset is not None:
        concept = resource.get("valueCodeableConcept")
        return _concept_in(concept, call.valuesets[test.valueset])
    quantity = resource.get("valueQuantity")
    if test.unit is None:
        return _number_ok(_quantity(quantity), test)
    value = quantity_in(quantity, test.unit, molar_mass=molar_mass)
    if value is not None and test.albumin_corrected and item is not None:
        value = _albumin_corrected(call, item, value, test.unit, molar_mass)
    return _number_ok(value, test)


# Serum albumin is read for a calcium correction when it was measured within this long of the
# calcium (before or after): the two are drawn together in practice.
_ALBUMIN_WINDOW = timedelta(days=2)
_NORMAL_ALBUMIN_G_DL = 4.0


def _albumin_corrected(
    call: _Call, item: Item, value: float, unit: str, molar_mass: float | None
) -> float:
    """Total calcium corrected for serum albumin: Ca + 0.8 x (4 - albumin), in mg/dL and g/dL
    (clinical-codes.md §3). Without a final albumin near the calcium's date, or with one whose
    unit cannot be read, the measured value stands."""
    albumin_set = call.valuesets.get(ALBUMIN_VALUESET)
    when = item.date
    if albumin_set is None or when is None:
        return value
    near = [
        albumin
        for albumin in call.record.find("observation", albumin_set)
        if albumin.date is not None
        and abs(albumin.date - when) <= _ALBUMIN_WINDOW
        and _OBSERVATION_COUNTS(albumin)
    ]
    if not near:
        return value
    albumin = quantity_in(max(near, key=_date_key).resource.get("valueQuantity"), "g/dL")
    in_mg_dl = to_unit(value, unit, "mg/dL", molar_mass=molar_mass)
    if albumin is None or in_mg_dl is None:
        return value
    corrected = in_mg_dl + 0.8 * (_NORMAL_ALBUMIN_G_DL - albumin)
    back = to_unit(corrected, "mg/dL", unit, molar_mass=molar_mass)
    return value if back is None else back


def _body_site_ok(call: _Call, item: Item, valueset_id: str) -> bool:
    """A code of the resource's ``bodySite`` (a list, or one concept on an Observation) is in
    the value set: how a side or a site is recorded when the code itself does not say it."""
    sites = item.resource.get("bodySite")
    valueset = call.valuesets[valueset_id]
    return any(
        _concept_in(site, valueset) for site in (sites if isinstance(sites, list) else [sites])
    )


def _components_ok(call: _Call, item: Item, query: FactQuery) -> bool:
    """Every component test is met by some component of this one observation."""
    components = [c for c in _listed(item.resource.get("component")) if isinstance(c, dict)]
    for test in query.component_tests():
        valueset = call.valuesets[test.valueset]
        if not any(
            _concept_in(component.get("code"), valueset)
            and (
                test.value is None
                or _value_ok(call, component, test.value, MOLAR_MASS.get(test.valueset))
            )
            for component in components
        ):
            return False
    return True


def _trend(
    call: _Call, items: Sequence[Item], trend: TrendTest, molar_mass: float | None
) -> list[Item]:
    """Values are compared in the unit of the latest one that carries a unit; a value whose
    unit cannot be converted to it is left out. Only when no value carries a unit are the
    numbers compared as they are (scores)."""
    since = call.now - parse_duration(trend.within)
    recent = [i for i in items if i.date is not None and i.date >= since]
    quantities = [(i, i.resource.get("valueQuantity")) for i in recent]
    units = [
        (i, _unit_of(q))
        for i, q in sorted(quantities, key=lambda p: _date_key(p[0]))
        if _unit_of(q)
    ]
    if units:
        target = units[-1][1]
        points = [(i, quantity_in(q, target, molar_mass=molar_mass)) for i, q in quantities]
    else:
        points = [(i, _quantity(q)) for i, q in quantities]
    numeric = [(i, v) for i, v in points if v is not None]
    if len(numeric) < 2:
        return []
    latest_item, latest_value = max(numeric, key=lambda p: _date_key(p[0]))
    peak_item, peak_value = max(numeric, key=lambda p: p[1])
    if peak_value <= 0 or peak_item is latest_item:
        return []
    drop = (peak_value - latest_value) / peak_value * 100
    return [peak_item, latest_item] if drop >= trend.decrease_percent else []


def _date_key(item: Item) -> tuple[datetime, str]:
    return (item.date or _EPOCH, item.id)


def _listed(value: Any) -> list[Any]:
    """A FHIR array element read defensively: anything but a list reads as empty."""
    return value if isinstance(value, list) else []


def _code_of(element: Any) -> str | None:
    if isinstance(element, dict):
        for coding in _listed(element.get("coding")):
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                return str(coding["code"])
    return None


_StatusCheck = Callable[[Item], bool]


def _status_rows(kind: str, current: bool) -> dict[str, StatusRow]:
    """Resource type -> the row of its ``status`` element that applies (a current query falls
    back to the "any" row of a type without a current one)."""
    rows = {
        r.resource: r for r in KINDS[kind].statuses if r.element == "status" and r.query == "any"
    }
    if current:
        rows |= {
            r.resource: r
            for r in KINDS[kind].statuses
            if r.element == "status" and r.query == "current"
        }
    return rows


def _status_check(kind: str, current: bool) -> _StatusCheck:
    """Whether an item of ``kind`` counts as a fact: its kind's own rule, else its status row."""
    special = _STATUS_RULES.get(kind)
    return special(current) if special is not None else _by_status(_status_rows(kind, current))


def _by_status(rows: Mapping[str, StatusRow]) -> _StatusCheck:
    def counts(item: Item) -> bool:
        raw_status = item.resource.get("status")
        status = raw_status if isinstance(raw_status, str) else None
        status_row = rows.get(item.rtype)
        if status_row is None:
            return status != "entered-in-error"
        return statuses.counts(status, status_row)

    return counts


def _condition_status(current: bool) -> _StatusCheck:
    """A known disease (verificationStatus); a current one also by clinicalStatus, or, without
    one, by having no abatement."""

    def counts(item: Item) -> bool:
        resource = item.resource
        if not statuses.counts(_code_of(resource.get("verificationStatus")), _CONDITION_VERIFIED):
            return False
        if current:
            clinical = _code_of(resource.get("clinicalStatus"))
            if clinical is None:
                return not any(key.startswith("abatement") for key in resource)
            return statuses.counts(clinical, _CONDITION_CURRENT)
        return True

    return counts


def _draft_status(current: bool) -> _StatusCheck:
    """A draft order counts unless it was entered in error (it is not on record yet)."""

    def counts(item: Item) -> bool:
        return item.resource.get("status") != "entered-in-error"

    return counts


def _document_status(current: bool) -> _StatusCheck:
    """A document counts by its status row, and not when its docStatus is entered-in-error."""
    by_row = _by_status(_status_rows("document", current))

    def counts(item: Item) -> bool:
        if item.resource.get("docStatus") == "entered-in-error":
            return False
        return by_row(item)

    return counts


# Kinds whose status is not read from their status rows alone.
_STATUS_RULES: dict[str, Callable[[bool], _StatusCheck]] = {
    "condition": _condition_status,
    "draft-order": _draft_status,
    "document": _document_status,
}
_OBSERVATION_COUNTS = _status_check("observation", current=False)


def _concept_in(concept: Any, valueset: Any) -> bool:
    if not isinstance(concept, dict):
        return False
    for coding in _listed(concept.get("coding")):
        if not isinstance(coding, dict):
            continue
        system = canonical_system(coding.get("system"))
        if system is None:
            continue
        if valueset.contains(system, normalize_code(system, coding.get("code"))):
            return True
    return False


def _quantity(quantity: Any) -> float | None:
    if not isinstance(quantity, dict):
        return None
    value = quantity.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _unit_of(quantity: Any) -> str:
    """The unit a Quantity names (its code, else its text), or ''."""
    if not isinstance(quantity, dict):
        return ""
    for key in ("code", "unit"):
        unit = quantity.get(key)
        if isinstance(unit, str) and unit.strip():
            return unit
    return ""


def _number_ok(value: float | None, test: ValueTest) -> bool:
    """``value`` (already in the test's unit) against the thresholds; None never passes."""
    if value is None:
        return False
    return not (
        (test.gt is not None and not value > test.gt)
        or (test.gte is not None and not value >= test.gte)
        or (test.lt is not None and not value < test.lt)
        or (test.lte is not None and not value <= test.lte)
    )


def _interpretations(resource: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for concept in _listed(resource.get("interpretation")):
        if not isinstance(concept, dict):
            continue
        for coding in _listed(concept.get("coding")):
            if (
                isinstance(coding, dict)
                and isinstance(coding.get("code"), str)
                and coding.get("system") in _INTERPRETATION_SYSTEMS
            ):
                out.add(coding["code"])
    return out


def _valueset_display(item: Item, valuesets: Mapping[str, CompiledValueSet]) -> str | None:
    """The name a value set of ours gives one of the item's codes (exact code first, then an
    ICD-10-CM family): for a record whose codings carry no display of their own."""
    for system, code, _ in item.codings:
        for n in range(len(code), 2, -1):
            for valueset in valuesets.values():
                display = valueset.displays.get((system, code[:n]))
                if display:
                    return display if n == len(code) else f"{display}: {code}"
    return None


def _shown_display(item: Item, valuesets: Mapping[str, CompiledValueSet]) -> str:
    """The record's own display when it has one, else our value set's name of the code."""
    if any(display for _, _, display in item.codings):
        return item.display()
    return _valueset_display(item, valuesets) or item.display()


def _evidence(label: str, item: Item, valuesets: Mapping[str, CompiledValueSet]) -> Evidence:
    value = None
    resource = item.resource
    quantity = _quantity(resource.get("valueQuantity"))
    if quantity is not None:
        unit = resource["valueQuantity"].get("unit") or resource["valueQuantity"].get("code")
        value = f"{quantity:g} {unit if isinstance(unit, str) else ''}".strip()
    elif isinstance(resource.get("valueCodeableConcept"), dict):
        concept = resource["valueCodeableConcept"]
        codings = _listed(concept.get("coding"))
        first = codings[0] if codings and isinstance(codings[0], dict) else {}
        shown = first.get("display") or concept.get("text") or first.get("code")
        value = str(shown)[:80] if isinstance(shown, str | int) and shown != "" else None
    return Evidence(
        label=label,
        resource_type=item.rtype,
        resource_id=item.id or "(no id)",
        display=_shown_display(item, valuesets)[:120],
        date=item.date.date().isoformat() if item.date else None,
        value=value,
    )
