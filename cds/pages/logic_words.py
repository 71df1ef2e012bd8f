"""A rule's logic in plain words, as a tree of phrases a page renders as nested lists.

Reviewers read this instead of YAML. Definitions (``ref``) are spelled out where they are used,
with their name, so the page shows the whole rule at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from cds.knowledge import Knowledge
from cds.logic import Anchor, FactQuery, Node, PatientQuery, ValueTest
from cds.rules import Rule

__all__ = ["Phrase", "duration_words", "logic_phrases", "node_phrase", "valuesets_of_rule"]

_DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?$")
_UNITS = ("year", "month", "week", "day")
_KIND_WORDS = {
    "condition": "a condition",
    "observation": "an observation",
    "medication": "a medication",
    "procedure": "a procedure",
    "document": "a document",
    "research-subject": "enrolment in a research study",
    "service-request": "an order or referral",
    "draft-order": "a draft order being placed now",
}
_STATUS_WORDS = {
    "active": "that is active",
    "current": "that is current",
    "any": "in any status",
}
_EXPLAINED = frozenset(
    {
        "valueset",
        "label",
        "status",
        "within",
        "older_than",
        "after",
        "before",
        "latest",
        "value",
        "interpretation",
        "component",
        "count",
        "trend",
    }
)


@dataclass
class Phrase:
    """One line of the readable logic; ``children`` are its sub-conditions."""

    text: str
    children: list[Phrase] = field(default_factory=list)
    valueset: str | None = None  # a value set the line mentions, for a link


def duration_words(text: str) -> str:
    """``P90D`` -> ``90 days``; ``P1Y6M`` -> ``1 year 6 months``."""
    match = _DURATION.match(text)
    if not match or not any(match.groups()):
        return text
    parts = []
    for amount, unit in zip(match.groups(), _UNITS, strict=True):
        if amount:
            number = int(amount)
            parts.append(f"{number} {unit}{'' if number == 1 else 's'}")
    return " ".join(parts)


def _number(value: float) -> str:
    return f"{value:g}"


class _Speaker:
    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge

    def valueset_title(self, vs_id: str) -> str:
        compiled = self.knowledge.valuesets.get(vs_id)
        return f"“{compiled.title}”" if compiled else f"“{vs_id}”"

    def node(self, node: Node, stack: tuple[str, ...] = ()) -> Phrase:
        if node.all_ is not None:
            return Phrase("all of the following hold:", [self.node(c, stack) for c in node.all_])
        if node.any_ is not None:
            return Phrase(
                "at least one of the following holds:", [self.node(c, stack) for c in node.any_]
            )
        if node.not_ is not None:
            return Phrase("this does not hold:", [self.node(node.not_, stack)])
        if node.ref is not None:
            return self.ref(node.ref, stack)
        if node.patient is not None:
            return Phrase(self.patient(node.patient))
        fact = node.fact()
        if fact is None:
            return Phrase(f"(an unrecognised logic node: {node.describe()})")
        kind, query = fact
        return self.fact(kind, query)

    def ref(self, name: str, stack: tuple[str, ...]) -> Phrase:
        doc = self.knowledge.definition_docs.get(name)
        if doc is None:
            return Phrase(f"the definition “{name}” (missing)")
        if name in stack:
            return Phrase(f"{doc.description} (definition “{name}”, see above)")
        return Phrase(
            f"{doc.description} (definition “{name}”), which means:",
            [self.node(doc.logic, (*stack, name))],
        )

    def patient(self, query: PatientQuery) -> str:
        parts = []
        if query.sex is not None:
            parts.append("sex is " + " or ".join(query.sex))
        if query.age_at_least is not None:
            parts.append(f"aged {query.age_at_least} or older")
        if query.age_below is not None:
            parts.append(f"younger than {query.age_below}")
        if query.deceased is not None:
            parts.append("deceased" if query.deceased else "alive")
        return "the patient is " + (", ".join(parts) if parts else "anyone")

    def anchor(self, anchor: Anchor) -> str:
        doc = self.knowledge.definition_docs.get(anchor.name)
        what = doc.description if doc else anchor.name
        when = "first" if anchor.first else "most recent"
        text = f"the {when} record of {what}"
        if anchor.offset:
            text += f" plus {duration_words(anchor.offset)}"
        return text

    def value(self, test: ValueTest) -> str:
        if test.valueset is not None:
            return f"whose value is in the value set {self.valueset_title(test.valueset)}"
        bounds = []
        for name, word in (("gt", ">"), ("gte", "≥"), ("lt", "<"), ("lte", "≤")):
            bound = getattr(test, name)
            if bound is not None:
                bounds.append(f"{word} {_number(bound)}")
        unit = f" {test.unit}" if test.unit else ""
        return "whose value is " + " and ".join(bounds) + unit

    def fact(self, kind: str, query: FactQuery) -> Phrase:
        head = _KIND_WORDS.get(kind, kind.replace("-", " "))
        if query.valueset is not None:
            head += f" in the value set {self.valueset_title(query.valueset)}"
        if query.label:
            head += f" (shown as “{query.label}”)"
        children = [Phrase(text) for text in self.qualifiers(query)]
        return Phrase(head, children, valueset=query.valueset)

    def qualifiers(self, query: FactQuery) -> Iterator[str]:
        if query.status is not None:
            yield _STATUS_WORDS.get(query.status, f"with status {query.status}")
        if query.within is not None:
            yield f"dated within the last {duration_words(query.within)}"
        if query.older_than is not None:
            yield f"dated more than {duration_words(query.older_than)} ago"
        if query.after is not None:
            yield f"dated on or after {self.anchor(query.after)}"
        if query.before is not None:
            yield f"dated before {self.anchor(query.before)}"
        if query.component is not None:
            text = f"with a component in {self.valueset_title(query.component.valueset)}"
            if query.component.value is not None:
                text += " " + self.value(query.component.value)
            yield text
        if query.latest:
            yield "only the most recent one counts"
        if query.value is not None:
            yield self.value(query.value)
        if query.interpretation is not None:
            yield "interpreted as " + " or ".join(query.interpretation)
        if query.trend is not None:
            yield (
                f"the latest value is at least {_number(query.trend.decrease_percent)}% below "
                f"the highest within the last {duration_words(query.trend.within)}"
            )
        if query.count is not None:
            yield f"at least {query.count.at_least} of them"
        for name, value in query.model_dump(exclude_defaults=True).items():
            if name not in _EXPLAINED:
                yield f"{name.replace('_', ' ')}: {value}"


def node_phrase(knowledge: Knowledge, node: Node) -> Phrase:
    """One logic node (and everything under it) in words."""
    return _Speaker(knowledge).node(node)


def logic_phrases(knowledge: Knowledge, rule: Rule) -> tuple[list[Phrase], list[Phrase]]:
    """(inclusion, exclusion) of ``rule`` as phrases."""
    speaker = _Speaker(knowledge)
    return (
        [speaker.node(node) for node in rule.logic.inclusion],
        [speaker.node(node) for node in rule.logic.exclusion],
    )


def _valuesets_in(knowledge: Knowledge, node: Node, seen_refs: set[str]) -> Iterator[str]:
    if node.ref is not None and node.ref not in seen_refs:
        seen_refs.add(node.ref)
        definition = knowledge.definitions.get(node.ref)
        if definition is not None:
            yield from _valuesets_in(knowledge, definition, seen_refs)
    fact = node.fact()
    if fact is not None:
        query = fact[1]
        for anchor in (query.after, query.before):
            if anchor is not None and anchor.name in knowledge.definitions:
                yield from _valuesets_in(
                    knowledge, Node.model_validate({"ref": anchor.name}), seen_refs
                )
        for vs in (
            query.valueset,
            query.value.valueset if query.value else None,
            query.component.valueset if query.component else None,
            query.component.value.valueset if query.component and query.component.value else None,
        ):
            if vs is not None:
                yield vs
    for child in node.children():
        yield from _valuesets_in(knowledge, child, seen_refs)


def valuesets_of_rule(knowledge: Knowledge, rule: Rule) -> list[str]:
    """Every value set the rule reads (through definitions and includes), in first-use order."""
    seen_refs: set[str] = set()
    found: list[str] = []
    pending: list[str] = [
        vs
        for node in (*rule.logic.inclusion, *rule.logic.exclusion)
        for vs in _valuesets_in(knowledge, node, seen_refs)
    ]
    while pending:
        vs_id = pending.pop(0)
        if vs_id in found:
            continue
        found.append(vs_id)
        file = knowledge.valueset_files.get(vs_id)
        if file is not None:
            pending.extend(file.include)
    return found
