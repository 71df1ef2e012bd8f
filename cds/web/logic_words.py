"""A rule's logic as a tree of phrases, which the knowledge page renders as nested lists.

Leaves (facts about the record, the patient) are worded by :mod:`cds.kb.logic_text`, the same
reading the exports use; this module adds the tree: ``all``/``any``/``not`` become nested
lists, and definitions (``ref``) are spelled out where they are used, with their name, so
a reviewer sees the whole rule on one page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cds.kb.loader import Knowledge
from cds.kb.logic import FactQuery, Node, NodeFold, PatientQuery, fold, walk
from cds.kb.logic_text import describe_node
from cds.kb.schemas import Rule

__all__ = ["Phrase", "logic_phrases", "node_phrase", "valuesets_of_rule"]


@dataclass
class Phrase:
    """One line of the readable logic; ``children`` are its sub-conditions."""

    text: str
    children: list[Phrase] = field(default_factory=list)
    valueset: str | None = None  # a value set the line mentions, for a link to its codes


class _Phrases(NodeFold[Phrase]):
    """``all``/``any``/``not`` as nested lists; a definition spelled out where it is used
    (once on a path: a definition met again inside itself is referred to, not repeated)."""

    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge

    def fact(self, node: Node, kind: str, query: FactQuery) -> Phrase:
        return Phrase(describe_node(node, self.knowledge.definition_docs), valueset=query.valueset)

    def patient(self, node: Node, query: PatientQuery) -> Phrase:
        return Phrase(describe_node(node, self.knowledge.definition_docs))

    def all_of(self, node: Node, parts: list[Phrase]) -> Phrase:
        return Phrase("all of the following hold:", parts)

    def any_of(self, node: Node, parts: list[Phrase]) -> Phrase:
        return Phrase("at least one of the following holds:", parts)

    def none_of(self, node: Node, part: Phrase) -> Phrase:
        return Phrase("there is no record of:", [part])

    def ref(self, node: Node, name: str, expand: Callable[[], Phrase] | None) -> Phrase:
        doc = self.knowledge.definition_docs.get(name)
        if doc is None:
            return Phrase(f"the definition “{name}” (missing)")
        if expand is None:
            return Phrase(f"{doc.description} (definition “{name}”, see above)")
        return Phrase(f"{doc.description} (definition “{name}”), which means:", [expand()])


def node_phrase(knowledge: Knowledge, node: Node) -> Phrase:
    """One logic node (and everything under it) in words."""
    return fold(node, _Phrases(knowledge), knowledge.definitions)


def logic_phrases(knowledge: Knowledge, rule: Rule) -> tuple[list[Phrase], list[Phrase]]:
    """(inclusion, exclusion) of ``rule`` as phrases."""
    return (
        [node_phrase(knowledge, node) for node in rule.logic.inclusion],
        [node_phrase(knowledge, node) for node in rule.logic.exclusion],
    )


def valuesets_of_rule(knowledge: Knowledge, rule: Rule) -> list[str]:
    """Every value set the rule reads (through definitions and includes), in first-use order."""
    found: list[str] = []
    pending: list[str] = [
        vs
        for node in walk((*rule.logic.inclusion, *rule.logic.exclusion), knowledge.definitions)
        if (fact := node.fact()) is not None
        for vs in fact[1].valuesets()
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
