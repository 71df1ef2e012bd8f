"""The one traversal of rule logic: through operators, definitions and anchors, each once."""

from __future__ import annotations

from typing import Any

from cds.kb.logic import Node, walk


def _node(data: dict[str, Any]) -> Node:
    return Node.model_validate(data)


def _fact(valueset: str, **extra: Any) -> dict[str, Any]:
    return {"condition": {"valueset": valueset, **extra}}


DEFINITIONS = {
    "loop-a": _node({"any": [_fact("a"), {"ref": "loop-b"}]}),
    "loop-b": _node({"all": [_fact("b"), {"ref": "loop-a"}]}),
    "anchor": _node(_fact("anchor")),
    "hidden": _node(_fact("hidden")),
}


def _valuesets(nodes: list[Node]) -> list[str]:
    return [fact[1].valueset or "" for node in nodes if (fact := node.fact()) is not None]


def test_a_cycle_of_definitions_is_walked_once_and_ends() -> None:
    reached: list[str] = []
    nodes = list(walk([_node({"ref": "loop-a"})], DEFINITIONS, reached=reached))
    assert reached == ["loop-a", "loop-b"]
    assert _valuesets(nodes) == ["a", "b"]


def test_a_definition_used_twice_is_entered_once() -> None:
    roots = [_node({"ref": "anchor"}), _node({"not": {"ref": "anchor"}})]
    assert _valuesets(list(walk(roots, DEFINITIONS))) == ["anchor"]


def test_anchors_are_followed_unless_asked_not_to() -> None:
    root = _node(_fact("sign", after={"first": "anchor"}))
    assert _valuesets(list(walk([root], DEFINITIONS))) == ["sign", "anchor"]
    assert _valuesets(list(walk([root], DEFINITIONS, anchors=False))) == ["sign"]


def test_negations_and_refused_definitions_can_be_left_out() -> None:
    root = _node({"all": [{"not": _fact("absent")}, {"ref": "hidden"}, _fact("kept")]})
    assert _valuesets(list(walk([root], DEFINITIONS))) == ["absent", "hidden", "kept"]
    found = walk([root], DEFINITIONS, negations=False, enter=lambda name: name != "hidden")
    assert _valuesets(list(found)) == ["kept"]


def test_without_definitions_only_the_tree_is_walked_and_unknown_names_are_skipped() -> None:
    root = _node({"any": [{"ref": "anchor"}, {"ref": "no-such-definition"}, _fact("own")]})
    assert _valuesets(list(walk([root]))) == ["own"]
    assert _valuesets(list(walk([root], DEFINITIONS))) == ["anchor", "own"]


def test_depth_first_in_written_order_or_breadth_first() -> None:
    root = _node({"all": [{"any": [_fact("deep")]}, _fact("shallow")]})
    assert _valuesets(list(walk([root]))) == ["deep", "shallow"]
    assert _valuesets(list(walk([root], breadth_first=True))) == ["shallow", "deep"]
