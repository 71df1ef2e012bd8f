"""Codes a rule cannot fire without, read off its logic once per knowledge load.

A rule's inclusion holds only when every one of its *gates* is open, and a gate is open when
the record has a code, of the right kind, in at least one of the gate's value sets. A fact
with a value set is its own gate; ``all`` has every gate of its parts; ``any`` has one gate
made of one gate from each part (so only when every part has one); ``not`` and ``patient``
require no code. The engine skips a rule with a closed gate without walking its logic: most
rules of most calls ask about a sign the patient does not have.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from cds.kb.logic import FactQuery, Node, NodeFold, PatientQuery, fold
from cds.kb.schemas import Rule

__all__ = ["Gate", "rule_gates"]

Gate = frozenset[tuple[str, str]]  # (fact kind, value set id) pairs; open if any is on record


class _Gates(NodeFold[list[Gate]]):
    def fact(self, node: Node, kind: str, query: FactQuery) -> list[Gate]:
        return [frozenset({(kind, query.valueset)})] if query.valueset else []

    def patient(self, node: Node, query: PatientQuery) -> list[Gate]:
        return []

    def all_of(self, node: Node, parts: list[list[Gate]]) -> list[Gate]:
        return [gate for gates in parts for gate in gates]

    def any_of(self, node: Node, parts: list[list[Gate]]) -> list[Gate]:
        if not all(parts):
            return []
        return [frozenset().union(*(min(gates, key=len) for gates in parts))]

    def none_of(self, node: Node, part: list[Gate]) -> list[Gate]:
        return []

    def ref(self, node: Node, name: str, expand: Callable[[], list[Gate]] | None) -> list[Gate]:
        return expand() if expand is not None else []


_GATES = _Gates()


def rule_gates(rule: Rule, definitions: Mapping[str, Node]) -> tuple[Gate, ...]:
    """The rule's gates, narrowest first (the likeliest to be closed is checked first)."""
    found = {gate for node in rule.logic.inclusion for gate in fold(node, _GATES, definitions)}
    return tuple(sorted(found, key=lambda gate: (len(gate), sorted(gate))))
