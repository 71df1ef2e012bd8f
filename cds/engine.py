"""Evaluate rules against a :class:`~cds.record.PatientRecord`. Pure and deterministic.

``now`` is injected, nothing is read from the clock or the network, and the same record and
knowledge always give the same result. Each fired rule carries its explanation: the resources
that made each inclusion hold and the facts whose absence it relied on.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from cds.fhirtime import parse_duration
from cds.knowledge import Knowledge
from cds.logic import Anchor, FactQuery, Node, PatientQuery, ValueTest
from cds.logic_text import describe_node
from cds.record import Item, PatientRecord
from cds.rules import Rule
from cds.terminology import V3_INTERPRETATION, canonical_system, normalize_code

__all__ = ["Evaluation", "Evidence", "Fired", "evaluate"]

_CONDITION_ACTIVE = frozenset({"active", "recurrence", "relapse"})
_NOT_TRUE = frozenset({"refuted", "entered-in-error"})
_OBS_FINAL = frozenset({"final", "amended", "corrected"})
_MED_CURRENT = {
    "MedicationRequest": frozenset({"active", "on-hold"}),
    "MedicationStatement": frozenset({"active", "intended", "on-hold"}),
    "MedicationAdministration": frozenset({"in-progress", "on-hold"}),
}
_MED_NEVER = frozenset({"entered-in-error", "cancelled", "not-taken", "not-done", "draft"})
_PROCEDURE_DONE = frozenset({"completed", "in-progress"})
_STUDY_ACTIVE = frozenset(
    {"on-study", "on-study-intervention", "on-study-observation", "follow-up", "pending-on-study"}
)
_EPOCH = datetime.min.replace(tzinfo=UTC)
_SERVICE_REQUEST_LIVE = frozenset({"active", "completed", "on-hold"})


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
    evaluator = _Evaluator(knowledge, record)
    for rule in rules:
        if unavailable and rule.id in unavailable:
            evaluation.not_evaluated[rule.id] = unavailable[rule.id]
            continue
        if rule.id in suppressed:
            evaluation.not_evaluated[rule.id] = "suppressed after an 'already addressed' override"
            continue
        fired = evaluator.rule(rule)
        if fired is not None:
            evaluation.fired.append(fired)
    return evaluation


# What kind of node a node is, decided once per node (``_plan_of``), not on every call.
_FACT, _REF, _ALL, _ANY, _NOT, _PATIENT = range(6)
# A node's plan: (node, kind, payload). Payload: (kind, query) for a fact, the name for a
# ref, the children for all/any, the child for not, the query for patient. Nodes are immutable
# and outlive every call; the node is kept with its plan, so an id reused after a node is
# collected never matches.
_Plan = tuple[Node, int, Any]
_PLANS: dict[int, _Plan] = {}


def _plan_of(node: Node) -> _Plan:
    cached = _PLANS.get(id(node))
    if cached is not None and cached[0] is node:
        return cached
    fact = node.fact()
    plan: _Plan
    if fact is not None:
        plan = (node, _FACT, fact)
    elif node.ref is not None:
        plan = (node, _REF, node.ref)
    elif node.all_ is not None:
        plan = (node, _ALL, node.all_)
    elif node.any_ is not None:
        plan = (node, _ANY, node.any_)
    elif node.not_ is not None:
        plan = (node, _NOT, node.not_)
    else:
        assert node.patient is not None  # the schema guarantees exactly one field
        plan = (node, _PATIENT, node.patient)
    if len(_PLANS) >= 200_000:
        _PLANS.clear()
    _PLANS[id(node)] = plan
    return plan


def _fact_of(node: Node) -> tuple[str, FactQuery] | None:
    plan = _plan_of(node)
    fact: tuple[str, FactQuery] | None = plan[2] if plan[1] == _FACT else None
    return fact


class _Evaluator:
    def __init__(self, knowledge: Knowledge, record: PatientRecord) -> None:
        self.knowledge = knowledge
        self.record = record
        self.now = record.now
        self.memo: dict[int, _Result] = {}

    def rule(self, rule: Rule) -> Fired | None:
        results = []
        for node in rule.logic.inclusion:
            result = self.node(node)
            if not result.holds:
                return None
            results.append(result)
        for node in rule.logic.exclusion:
            if self.node(node).holds:
                return None
        evidence: dict[tuple[str, str, str], Evidence] = {}
        absent: list[str] = []
        for result in results:
            for label, item in result.items:
                shown = _evidence(label, item)
                evidence.setdefault((shown.resource_type, shown.resource_id, label), shown)
            absent.extend(a for a in result.absent if a not in absent)
        return Fired(rule=rule, evidence=tuple(evidence.values()), absent=tuple(absent))

    def node(self, node: Node) -> _Result:
        """The node's result, computed once per call (definitions are shared between rules)."""
        key = id(node)
        cached = self.memo.get(key)
        if cached is not None:
            return cached
        plan = _PLANS.get(key)
        if plan is None or plan[0] is not node:
            plan = _plan_of(node)
        kind = plan[1]
        result: _Result
        if kind == _FACT:
            items = self._fact(*plan[2])
            if items:
                label = self._label(node)
                result = _Result(True, tuple([(label, item) for item in items]))
            else:
                result = _FALSE
        elif kind == _REF:
            result = self._ref(node, plan[2])
        elif kind == _ALL:
            result = self._all(plan[2])
        elif kind == _ANY:
            result = self._any(plan[2])
        elif kind == _NOT:
            inner = self.node(plan[2])
            result = _FALSE if inner.holds else _Result(True, (), (self._absent(plan[2]),))
        else:
            result = _Result(self._patient(plan[2]))
        self.memo[key] = result
        return result

    def _ref(self, node: Node, name: str) -> _Result:
        target = self.knowledge.definitions[name]
        result = self.node(target)
        if not result.holds:
            return result
        fact = _fact_of(target)
        if fact is not None and fact[1].label is None:
            # A one-fact definition is named by its description in explanations.
            label = self._label(node)
            return _Result(True, tuple([(label, item) for _, item in result.items]))
        return result

    def _all(self, children: tuple[Node, ...]) -> _Result:
        parts = []
        for child in children:
            part = self.node(child)
            if not part.holds:
                return _FALSE
            parts.append(part)
        return _merged(parts)

    def _any(self, children: tuple[Node, ...]) -> _Result:
        holding = []
        for child in children:
            part = self.node(child)
            if part.holds:
                holding.append(part)
        return _merged(holding) if holding else _FALSE

    def _absent(self, node: Node) -> str:
        """The explanation line for a ``not`` that held."""
        if node.ref is not None or _fact_of(node) is not None:
            return f"No {self._label(node)} on record"
        return f"Not on record: {describe_node(node, self.knowledge.definition_docs)}"

    def _label(self, node: Node) -> str:
        if node.ref is not None:
            doc = self.knowledge.definition_docs.get(node.ref)
            return doc.description if doc else node.ref
        fact = _fact_of(node)
        if fact is not None:
            kind, query = fact
            if query.label:
                return query.label
            if query.valueset:
                return self.knowledge.valuesets[query.valueset].title.lower()
            return kind.replace("-", " ")
        return "matching record"

    # --- facts --------------------------------------------------------------------------------

    def _patient(self, query: PatientQuery) -> bool:
        record = self.record
        if query.deceased is not None and record.deceased != query.deceased:
            return False
        if query.sex is not None and record.sex not in query.sex:
            return False
        age = record.age_years
        if query.age_at_least is not None and (age is None or age < query.age_at_least):
            return False
        return not (query.age_below is not None and (age is None or age >= query.age_below))

    def _fact(self, kind: str, query: FactQuery) -> list[Item]:
        if query.valueset is not None:
            candidates = self.record.find(kind, self.knowledge.valuesets[query.valueset])
        else:
            candidates = self.record.all_of(kind)
        if not candidates:  # most facts of most calls
            return []
        items = [item for item in candidates if _status_ok(kind, query, item)]
        if not items:  # nothing for the filters below to keep (the usual case)
            return items
        if query.within is not None:
            since = self.now - parse_duration(query.within)
            items = [i for i in items if i.date is not None and i.date >= since]
        if query.older_than is not None:
            until = self.now - parse_duration(query.older_than)
            items = [i for i in items if i.date is not None and i.date <= until]
        if query.after is not None:
            anchor = self._anchor(query.after)
            items = (
                []
                if anchor is None
                else [i for i in items if i.date is not None and i.date >= anchor]
            )
        if query.before is not None:
            anchor = self._anchor(query.before)
            items = (
                []
                if anchor is None
                else [i for i in items if i.date is not None and i.date < anchor]
            )
        if query.component_tests():
            items = [i for i in items if self._components_ok(i, query)]
        if query.latest and items:
            items = [max(items, key=_date_key)]
        if query.value is not None:
            items = [i for i in items if self._value_ok(i.resource, query.value)]
        if query.interpretation is not None:
            wanted = set(query.interpretation)
            items = [i for i in items if wanted & _interpretations(i.resource)]
        if query.trend is not None:
            items = self._trend(items, query)
        needed = query.count.at_least if query.count else 1
        return items if len(items) >= needed else []

    def _anchor(self, anchor: Anchor) -> datetime | None:
        result = self.node(self.knowledge.definitions[anchor.name])
        dates = [item.date for _, item in result.items if item.date is not None]
        if not result.holds or not dates:
            return None
        when = min(dates) if anchor.first else max(dates)
        return when + (parse_duration(anchor.offset) if anchor.offset else timedelta(0))

    def _value_ok(self, resource: dict[str, Any], test: ValueTest) -> bool:
        if test.valueset is not None:
            concept = resource.get("valueCodeableConcept")
            return _concept_in(concept, self.knowledge.valuesets[test.valueset])
        return _number_ok(resource.get("valueQuantity"), test)

    def _components_ok(self, item: Item, query: FactQuery) -> bool:
        """Every component test is met by some component of this one observation."""
        components = [c for c in _listed(item.resource.get("component")) if isinstance(c, dict)]
        for test in query.component_tests():
            valueset = self.knowledge.valuesets[test.valueset]
            if not any(
                _concept_in(component.get("code"), valueset)
                and (test.value is None or self._value_ok(component, test.value))
                for component in components
            ):
                return False
        return True

    def _trend(self, items: Sequence[Item], query: FactQuery) -> list[Item]:
        trend = query.trend
        assert trend is not None
        since = self.now - parse_duration(trend.within)
        points = [
            (i, _quantity(i.resource.get("valueQuantity")))
            for i in items
            if i.date is not None and i.date >= since
        ]
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


def _status_ok(kind: str, query: FactQuery, item: Item) -> bool:
    resource = item.resource
    raw_status = resource.get("status")
    status = raw_status if isinstance(raw_status, str) else None
    if kind == "condition":
        if _code_of(resource.get("verificationStatus")) in _NOT_TRUE:
            return False
        if query.status in ("active", "current"):
            clinical = _code_of(resource.get("clinicalStatus"))
            if clinical is None:
                return not any(key.startswith("abatement") for key in resource)
            return clinical in _CONDITION_ACTIVE
        return True
    if kind == "observation":
        return status in _OBS_FINAL
    if kind == "medication":
        if query.status in ("current", "active"):
            return status in _MED_CURRENT.get(item.rtype, frozenset())
        return status not in _MED_NEVER
    if kind == "procedure":
        return status in _PROCEDURE_DONE
    if kind == "document":
        return status in (None, "current") and resource.get("docStatus") != "entered-in-error"
    if kind == "research-subject":
        return status in _STUDY_ACTIVE
    if kind == "service-request":
        return status in _SERVICE_REQUEST_LIVE
    return status != "entered-in-error"


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


def _number_ok(quantity: Any, test: ValueTest) -> bool:
    value = _quantity(quantity)
    if value is None:
        return False
    if test.unit is not None:
        assert isinstance(quantity, dict)
        if test.unit not in (quantity.get("code"), quantity.get("unit")):
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
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                system = coding.get("system")
                if system in (None, V3_INTERPRETATION):
                    out.add(coding["code"])
    return out


def _evidence(label: str, item: Item) -> Evidence:
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
        display=item.display()[:120],
        date=item.date.date().isoformat() if item.date else None,
        value=value,
    )
