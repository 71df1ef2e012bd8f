"""Codes a rule cannot fire without, read off its logic once per knowledge load.

A rule's inclusion holds only when every one of its *gates* is open, and a gate is open when
the record has a code, of the right kind, in at least one of the gate's value sets. A fact
with a value set is its own gate; ``all`` has every gate of its parts; ``any`` has one gate
made of one gate from each part (so only when every part has one); ``not`` and ``patient``
require no code. The engine skips a rule with a closed gate without walking its logic: most
rules of most calls ask about a sign the patient does not have.
"""

from __future__ import annotations

from collections.abc import Mapping

from cds.kb.logic import Node
from cds.kb.schemas import Rule

__all__ = ["Gate", "rule_gates"]

Gate = frozenset[tuple[str, str]]  # (fact kind, value set id) pairs; open if any is on record
_NONE: frozenset[str] = frozenset()


def _gates(node: Node, definitions: Mapping[str, Node], seen: frozenset[str]) -> list[Gate]:
    fact = node.fact()
    if fact is not None:
        kind, query = fact
        return [frozenset({(kind, query.valueset)})] if query.valueset else []
    if node.ref is not None:
        if node.ref in seen or node.ref not in definitions:
            return []
        return _gates(definitions[node.ref], definitions, seen | {node.ref})
    if node.all_ is not None:
        return [gate for child in node.all_ for gate in _gates(child, definitions, seen)]
    if node.any_ is not None:
        per_child = [_gates(child, definitions, seen) for child in node.any_]
        if not all(per_child):
            return []
        return [frozenset().union(*(min(gates, key=len) for gates in per_child))]
    return []


def rule_gates(rule: Rule, definitions: Mapping[str, Node]) -> tuple[Gate, ...]:
    """The rule's gates, narrowest first (the likeliest to be closed is checked first)."""
    found = {gate for node in rule.logic.inclusion for gate in _gates(node, definitions, _NONE)}
    return tuple(sorted(found, key=lambda gate: (len(gate), sorted(gate))))
