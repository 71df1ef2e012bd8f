"""The traversals of rule logic: ``walk`` (every node, through operators, definitions and
anchors, each definition once) and ``fold`` (one structural reading, bottom-up)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cds.kb.logic import FactQuery, Node, NodeFold, PatientQuery, fold, walk


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


class _Spelled(NodeFold[str]):
    """The logic spelled back as a compact expression; ``ref`` expanded when it can be."""

    def fact(self, node: Node, kind: str, query: FactQuery) -> str:
        return f"{kind}:{query.valueset}"

    def patient(self, node: Node, query: PatientQuery) -> str:
        return f"age>={query.age_at_least}"

    def all_of(self, node: Node, parts: list[str]) -> str:
        return "all(" + ",".join(parts) + ")"

    def any_of(self, node: Node, parts: list[str]) -> str:
        return "any(" + ",".join(parts) + ")"

    def none_of(self, node: Node, part: str) -> str:
        return f"not({part})"

    def ref(self, node: Node, name: str, expand: Callable[[], str] | None) -> str:
        return f"{name}=[{expand()}]" if expand is not None else f"{name}=?"


def test_fold_reads_every_kind_of_node_bottom_up() -> None:
    root = _node(
        {"all": [{"any": [_fact("x"), {"patient": {"age_at_least": 18}}]}, {"not": _fact("y")}]}
    )
    assert fold(root, _Spelled()) == "all(any(condition:x,age>=18),not(condition:y))"


def test_fold_expands_a_definition_on_request_and_never_twice_on_one_path() -> None:
    root = _node({"ref": "loop-a"})
    expected = "loop-a=[any(condition:a,loop-b=[all(condition:b,loop-a=?)])]"
    assert fold(root, _Spelled(), DEFINITIONS) == expected


def test_fold_expands_a_definition_again_on_another_path() -> None:
    root = _node({"all": [{"ref": "anchor"}, {"not": {"ref": "anchor"}}]})
    expected = "all(anchor=[condition:anchor],not(anchor=[condition:anchor]))"
    assert fold(root, _Spelled(), DEFINITIONS) == expected


def test_fold_cannot_expand_an_unknown_name_or_without_definitions() -> None:
    root = _node({"any": [{"ref": "anchor"}, {"ref": "no-such-definition"}]})
    assert (
        fold(root, _Spelled(), DEFINITIONS) == "any(anchor=[condition:anchor],no-such-definition=?)"
    )
    assert fold(root, _Spelled()) == "any(anchor=?,no-such-definition=?)"
