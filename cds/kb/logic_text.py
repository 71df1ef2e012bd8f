"""Rule logic as plain English, for reviewers and for exports to other CDS engines.

The text is a faithful reading of the data, not a paraphrase: every filter the engine applies
appears, with the value set ids and definition names a reviewer can look up.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from cds.kb.fact_kinds import KINDS
from cds.kb.logic import Anchor, FactQuery, Node, NodeFold, PatientQuery, ValueTest, fold, walk
from cds.kb.schemas import Definition, Rule

__all__ = ["describe_duration", "describe_node", "describe_rule"]

_DURATION_PARTS = re.compile(r"(\d+)([YMWD])")
_UNITS = {"Y": "year", "M": "month", "W": "week", "D": "day"}
_OPERATORS = (("gt", ">"), ("gte", "≥"), ("lt", "<"), ("lte", "≤"))


def describe_duration(text: str) -> str:
    """``P1Y6M`` -> ``1 year 6 months``."""
    parts = []
    for number, unit in _DURATION_PARTS.findall(text):
        name = _UNITS[unit]
        parts.append(f"{number} {name}{'' if number == '1' else 's'}")
    return " ".join(parts) or text


def _value(test: ValueTest) -> str:
    if test.valueset is not None:
        return f"coded answer in value set {test.valueset}"
    bounds = [
        f"{symbol} {getattr(test, name):g}"
        for name, symbol in _OPERATORS
        if getattr(test, name) is not None
    ]
    unit = f" {test.unit}" if test.unit else ""
    corrected = " (corrected for a same-time albumin)" if test.albumin_corrected else ""
    return f"value {' and '.join(bounds)}{unit}{corrected}"


def _anchor(anchor: Anchor, definitions: Mapping[str, Definition], relation: str) -> str:
    doc = definitions.get(anchor.name)
    what = doc.description if doc else anchor.name
    which = "first" if anchor.first else "last"
    offset = f" plus {describe_duration(anchor.offset)}" if anchor.offset else ""
    return f"{relation} the {which} {what} [{anchor.name}]{offset}"


def _fact(kind: str, query: FactQuery, definitions: Mapping[str, Definition]) -> str:
    spec = KINDS.get(kind)
    text = spec.words if spec else kind
    if query.valueset:
        text += f" in value set {query.valueset}"
    filters = []
    if query.status in ("active", "current"):
        filters.append(spec.current_words if spec else "current")
    if query.within:
        filters.append(f"dated in the last {describe_duration(query.within)}")
    if query.older_than:
        filters.append(f"dated at least {describe_duration(query.older_than)} ago")
    if query.after:
        filters.append(_anchor(query.after, definitions, "on or after"))
    if query.before:
        filters.append(_anchor(query.before, definitions, "before"))
    if query.body_site:
        filters.append(f"with a body site in value set {query.body_site}")
    for test in query.component_tests():
        component = f"with a component in value set {test.valueset}"
        if test.value:
            component += f" whose {_value(test.value)}"
        filters.append(component)
    if query.latest:
        filters.append("taking only the most recent one")
    if query.value:
        filters.append(f"whose {_value(query.value)}")
    if query.interpretation:
        filters.append(f"flagged {' or '.join(query.interpretation)}")
    if query.trend:
        filters.append(
            f"whose latest value is at least {query.trend.decrease_percent:g}% below the "
            f"highest in the last {describe_duration(query.trend.within)}"
        )
    if query.count and query.count.at_least > 1:
        filters.append(f"at least {query.count.at_least} of them")
    return text + (", " + ", ".join(filters) if filters else "")


def _patient(query: PatientQuery) -> str:
    parts = []
    if query.age_at_least is not None:
        parts.append(f"aged {query.age_at_least} or older")
    if query.age_below is not None:
        parts.append(f"younger than {query.age_below}")
    if query.sex:
        parts.append(f"recorded sex {' or '.join(query.sex)}")
    if query.deceased is not None:
        parts.append("deceased" if query.deceased else "not deceased")
    return "the patient is " + ", ".join(parts) if parts else "any patient"


class _Words(NodeFold[str]):
    """Each node in English; a definition is named, not spelled out."""

    def __init__(self, definitions: Mapping[str, Definition]) -> None:
        self.definitions = definitions

    def fact(self, node: Node, kind: str, query: FactQuery) -> str:
        return _fact(kind, query, self.definitions)

    def patient(self, node: Node, query: PatientQuery) -> str:
        return _patient(query)

    def all_of(self, node: Node, parts: list[str]) -> str:
        return "all of (" + "; ".join(parts) + ")"

    def any_of(self, node: Node, parts: list[str]) -> str:
        return "any of (" + "; ".join(parts) + ")"

    def none_of(self, node: Node, part: str) -> str:
        return "no record of (" + part + ")"

    def ref(self, node: Node, name: str, expand: Callable[[], str] | None) -> str:
        doc = self.definitions.get(name)
        return f"{doc.description if doc else name} [{name}]"


def describe_node(node: Node, definitions: Mapping[str, Definition]) -> str:
    """One node and everything under it, in English; definitions are named, not expanded."""
    return fold(node, _Words(definitions))


def _definitions_used(nodes: Iterable[Node], definitions: Mapping[str, Definition]) -> list[str]:
    """Names of the definitions ``nodes`` reach (refs and anchors), in first-use order."""
    found: list[str] = []
    logic = {name: d.logic for name, d in definitions.items()}
    for _ in walk(nodes, logic, reached=found, breadth_first=True):
        pass
    return found


def describe_rule(rule: Rule, definitions: Mapping[str, Definition]) -> str:
    """The whole rule: what must hold, what stops it, and what each definition it uses means."""
    lines = [f"Rule {rule.id} v{rule.version} fires when all of these hold:"]
    lines += [f"- {describe_node(n, definitions)}" for n in rule.logic.inclusion]
    if rule.logic.exclusion:
        lines.append("unless any of these holds:")
        lines += [f"- {describe_node(n, definitions)}" for n in rule.logic.exclusion]
    used = _definitions_used((*rule.logic.inclusion, *rule.logic.exclusion), definitions)
    if used:
        lines.append("where:")
        lines += [
            f"- [{name}] is {describe_node(definitions[name].logic, definitions)}" for name in used
        ]
    return "\n".join(lines)
