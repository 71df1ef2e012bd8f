"""A rule's logic as a tree of phrases, which the knowledge page renders as nested lists.

Leaves (facts about the record, the patient) are worded by :mod:`cds.kb.logic_text`, the same
reading the exports use; this module adds the tree: ``all``/``any``/``not`` become nested
lists, and definitions (``ref``) are spelled out where they are used, with their name, so
a reviewer sees the whole rule on one page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cds.kb.loader import Knowledge
from cds.kb.logic import Node, walk
from cds.kb.logic_text import describe_node
from cds.kb.schemas import Rule

__all__ = ["Phrase", "logic_phrases", "node_phrase", "valuesets_of_rule"]


@dataclass
class Phrase:
    """One line of the readable logic; ``children`` are its sub-conditions."""

    text: str
    children: list[Phrase] = field(default_factory=list)
    valueset: str | None = None  # a value set the line mentions, for a link to its codes


def node_phrase(knowledge: Knowledge, node: Node, stack: tuple[str, ...] = ()) -> Phrase:
    """One logic node (and everything under it) in words."""
    if node.all_ is not None:
        return Phrase(
            "all of the following hold:", [node_phrase(knowledge, c, stack) for c in node.all_]
        )
    if node.any_ is not None:
        return Phrase(
            "at least one of the following holds:",
            [node_phrase(knowledge, c, stack) for c in node.any_],
        )
    if node.not_ is not None:
        return Phrase("there is no record of:", [node_phrase(knowledge, node.not_, stack)])
    if node.ref is not None:
        doc = knowledge.definition_docs.get(node.ref)
        if doc is None:
            return Phrase(f"the definition “{node.ref}” (missing)")
        if node.ref in stack:
            return Phrase(f"{doc.description} (definition “{node.ref}”, see above)")
        return Phrase(
            f"{doc.description} (definition “{node.ref}”), which means:",
            [node_phrase(knowledge, doc.logic, (*stack, node.ref))],
        )
    fact = node.fact()
    return Phrase(
        describe_node(node, knowledge.definition_docs),
        valueset=fact[1].valueset if fact is not None else None,
    )


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
