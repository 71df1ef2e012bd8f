"""Evaluate rules against a :class:`~cds.engine.record.PatientRecord`. Pure and deterministic.

``now`` is injected, nothing is read from the clock or the network, and the same record and
knowledge always give the same result. Each fired rule carries its explanation: the resources
that made each inclusion hold and the facts whose absence it relied on.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from cds.engine import statuses
from cds.engine.record import Item, PatientRecord, Unclassified
from cds.engine.units import MOLAR_MASS, quantity_in, to_unit
from cds.kb import plans
from cds.kb.code_systems import V3_INTERPRETATION
from cds.kb.fact_kinds import StatusRow, resource_date
from cds.kb.loader import Knowledge
from cds.kb.logic import ALBUMIN_VALUESET, Anchor, FactQuery, TrendTest, ValueTest
from cds.kb.plans import (
    AbsenceFact,
    AllPlan,
    AnyPlan,
    FactPlan,
    NotPlan,
    PatientPlan,
    RefPlan,
    RulePlan,
    compile_rule,
    status_rows,
)
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
    plans = knowledge.program.rules
    known = knowledge.compiled_rules
    for rule in rules:
        if unavailable and rule.id in unavailable:
            evaluation.not_evaluated[rule.id] = unavailable[rule.id]
            continue
        if rule.id in suppressed:
            evaluation.not_evaluated[rule.id] = "suppressed after an 'already addressed' override"
            continue
        plan = plans.get(rule.id)
        if plan is None or known.get(rule.id) is not rule:
            # not this knowledge's own rule (a test's): compiled now
            plan = compile_rule(
                rule, knowledge.definitions, knowledge.definition_docs, knowledge.valuesets
            )
        if plan.gates and not call.opens(plan.gates):
            continue  # a code the rule needs is not on record: it cannot fire
        fired = call.rule(rule, plan)
        if fired is not None:
            evaluation.fired.append(fired)
    return evaluation


# --- running plans ---------------------------------------------------------------------------
#
# The loader compiled every rule and definition to plans (cds.kb.plans): value sets looked up,
# durations parsed, filters chosen, labels worded. Running one is a call per plan node through
# the table of runners below, indexed by the plan's op; nothing is kept between calls.


class _Call:
    """What one evaluation reads: the knowledge, the record, and definitions already run."""

    __slots__ = ("coded", "definitions", "memo", "now", "record", "valuesets")

    def __init__(self, knowledge: Knowledge, record: PatientRecord) -> None:
        self.definitions = knowledge.program.definitions
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
            plan = self.definitions[name]
            result = _RUN[plan.op](plan, self)
            self.memo[name] = result
        return result

    def rule(self, rule: Rule, plan: RulePlan) -> Fired | None:
        results = []
        run = _RUN
        for part in plan.inclusion:
            result = run[part.op](part, self)
            if not result.holds:
                return None
            results.append(result)
        for part in plan.exclusion:
            if run[part.op](part, self).holds:
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

    def unread_for(self, plan: NotPlan) -> _Unread | None:
        """The record's unclassified entries that a fact under the ``not`` could have been: of
        its kind, with a status it counts and, for a fact with a window, dated within it (or
        undated). None when there are none. Their words are used here only to hold a claim of
        absence back, never to make a fact hold."""
        entries: dict[int, Unclassified] = {}
        named = False
        for fact in plan.absence_facts:
            for entry in self.record.unclassified.get(fact.kind, ()):
                if not self._could_be(entry, fact):
                    continue
                entries.setdefault(id(entry), entry)
                if not named and entry.text and fact.names is not None:
                    named = fact.names.search(entry.text) is not None
        return _Unread(tuple(entries.values()), named) if entries else None

    def _could_be(self, entry: Unclassified, fact: AbsenceFact) -> bool:
        status_row = fact.status_rows.get(entry.rtype)
        raw = entry.resource.get("status")
        if status_row is not None and not statuses.counts(
            raw if isinstance(raw, str) else None, status_row
        ):
            return False
        if fact.within is not None:
            when = resource_date(entry.resource)
            return when is None or when >= self.now - fact.within
        return True


def _run_ref(plan: RefPlan, call: _Call) -> _Result:
    result = call.definition(plan.name)
    label = plan.relabel
    if not result.holds or label is None:
        return result
    # A one-fact definition is named by its description in explanations.
    return _Result(True, tuple([(label, item) for _, item in result.items]))


def _run_all(plan: AllPlan, call: _Call) -> _Result:
    parts = []
    run = _RUN
    for part in plan.parts:
        result = run[part.op](part, call)
        if not result.holds:
            return _FALSE
        parts.append(result)
    return _merged(parts)


def _run_any(plan: AnyPlan, call: _Call) -> _Result:
    run = _RUN
    holding = [result for result in [run[p.op](p, call) for p in plan.parts] if result.holds]
    return _merged(holding) if holding else _FALSE


def _run_not(plan: NotPlan, call: _Call) -> _Result:
    part = plan.part
    if _RUN[part.op](part, call).holds:
        return _FALSE
    if not call.record.unclassified:  # the usual call: every entry has a code
        return _Result(True, (), (plan.absent,))
    unread = call.unread_for(plan)
    if unread is None:
        return _Result(True, (), (plan.absent,))
    if unread.named:  # an entry's words name what is claimed absent: no claim
        return _FALSE
    return _Result(True, (), (f"{plan.absent} ({unread.note()})",))


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


def _run_patient(plan: PatientPlan, call: _Call) -> _Result:
    query = plan.query
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


def _run_fact(plan: FactPlan, call: _Call) -> _Result:
    valueset = plan.valueset
    if valueset is not None:
        if plan.coded not in call.coded:  # most facts of most calls
            return _FALSE
        items = call.record.find(plan.kind, valueset)
    else:
        items = call.record.all_of(plan.kind)
    narrow = _FILTERS
    for op, arg in plan.filters:
        if not items:
            return _FALSE
        items = narrow[op](call, items, arg)
    if len(items) < plan.needed:
        return _FALSE
    label = plan.label
    found = tuple([(label, item) for item in items])
    after = plan.after
    if after is not None and call.undated(after):
        return _Result(True, found, (plan.undated_note,))
    return _Result(True, found)


# The runners, indexed by a plan's op (cds.kb.plans: ALL, ANY, NOT, REF, FACT, PATIENT).
_RUN: tuple[Callable[[Any, _Call], _Result], ...] = (
    _run_all,
    _run_any,
    _run_not,
    _run_ref,
    _run_fact,
    _run_patient,
)
assert tuple(range(6)) == (plans.ALL, plans.ANY, plans.NOT, plans.REF, plans.FACT, plans.PATIENT)


# --- a fact's filters, by filter op ----------------------------------------------------------

_Items = list[Item]


def _status(call: _Call, items: _Items, arg: tuple[str, bool, Mapping[str, StatusRow]]) -> _Items:
    kind, current, rows = arg
    special = _STATUS_RULES.get(kind)
    if special is None:
        return [item for item in items if _counts_by_row(item, rows)]
    return [item for item in items if special(item, current, rows)]


def _within(call: _Call, items: _Items, within: timedelta) -> _Items:
    return _on_or_after(items, call.now - within)


def _older_than(call: _Call, items: _Items, older: timedelta) -> _Items:
    return _on_or_before(items, call.now - older)


def _after(call: _Call, items: _Items, after: Anchor) -> _Items:
    return _on_or_after(items, _EPOCH if call.undated(after) else call.anchor(after))


def _before_anchor(call: _Call, items: _Items, before: Anchor) -> _Items:
    return _before(items, call.anchor(before))


def _body_site(call: _Call, items: _Items, site: str) -> _Items:
    return [i for i in items if _body_site_ok(call, i, site)]


def _components(call: _Call, items: _Items, query: FactQuery) -> _Items:
    return [i for i in items if _components_ok(call, i, query)]


def _latest(call: _Call, items: _Items, arg: None) -> _Items:
    return [max(items, key=_date_key)]


def _value(call: _Call, items: _Items, arg: tuple[ValueTest, str | None]) -> _Items:
    value, valueset = arg
    molar_mass = MOLAR_MASS.get(valueset or "")
    return [i for i in items if _value_ok(call, i.resource, value, molar_mass, i)]


def _interpretation(call: _Call, items: _Items, wanted: frozenset[str]) -> _Items:
    return [i for i in items if wanted & _interpretations(i.resource)]


def _trend_filter(call: _Call, items: _Items, arg: tuple[TrendTest, str | None]) -> _Items:
    trend, valueset = arg
    return _trend(call, items, trend, MOLAR_MASS.get(valueset or ""))


# Indexed by filter op (cds.kb.plans: STATUS, WITHIN, ... TREND).
_FILTERS: tuple[Callable[[_Call, _Items, Any], _Items], ...] = (
    _status,
    _within,
    _older_than,
    _after,
    _before_anchor,
    _body_site,
    _components,
    _latest,
    _value,
    _interpretation,
    _trend_filter,
)
assert len(_FILTERS) - 1 == plans.TREND


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
        and _counts_by_row(albumin, _OBSERVATION_ROWS)
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


def _counts_by_row(item: Item, rows: Mapping[str, StatusRow]) -> bool:
    raw_status = item.resource.get("status")
    status = raw_status if isinstance(raw_status, str) else None
    status_row = rows.get(item.rtype)
    if status_row is None:
        return status != "entered-in-error"
    return statuses.counts(status, status_row)


def _condition_counts(item: Item, current: bool, rows: Mapping[str, StatusRow]) -> bool:
    """A known disease (verificationStatus); a current one also by clinicalStatus, or, without
    one, by having no abatement."""
    resource = item.resource
    if not statuses.counts(_code_of(resource.get("verificationStatus")), _CONDITION_VERIFIED):
        return False
    if current:
        clinical = _code_of(resource.get("clinicalStatus"))
        if clinical is None:
            return not any(key.startswith("abatement") for key in resource)
        return statuses.counts(clinical, _CONDITION_CURRENT)
    return True


def _draft_counts(item: Item, current: bool, rows: Mapping[str, StatusRow]) -> bool:
    """A draft order counts unless it was entered in error (it is not on record yet)."""
    return item.resource.get("status") != "entered-in-error"


def _document_counts(item: Item, current: bool, rows: Mapping[str, StatusRow]) -> bool:
    """A document counts by its status row, and not when its docStatus is entered-in-error."""
    if item.resource.get("docStatus") == "entered-in-error":
        return False
    return _counts_by_row(item, rows)


# Kinds whose status is not read from their status rows alone.
_STATUS_RULES: dict[str, Callable[[Item, bool, Mapping[str, StatusRow]], bool]] = {
    "condition": _condition_counts,
    "draft-order": _draft_counts,
    "document": _document_counts,
}
_OBSERVATION_ROWS = status_rows("observation", current=False)


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
