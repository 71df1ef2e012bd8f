"""The per-node plan the engine dispatches on: one kind per node shape, never a stale one."""

from __future__ import annotations

from typing import Any

import pytest

from cds import engine
from cds.logic import Node


def _node(data: dict[str, Any]) -> Node:
    return Node.model_validate(data)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        ({"condition": {"valueset": "vs"}}, engine._FACT),
        ({"research-subject": {}}, engine._FACT),
        ({"ref": "some-definition"}, engine._REF),
        ({"all": [{"ref": "a"}, {"ref": "b"}]}, engine._ALL),
        ({"any": [{"ref": "a"}]}, engine._ANY),
        ({"not": {"ref": "a"}}, engine._NOT),
        ({"patient": {"age_at_least": 18}}, engine._PATIENT),
    ],
)
def test_each_node_shape_gets_its_kind(data: dict[str, Any], kind: int) -> None:
    node = _node(data)
    plan = engine._plan_of(node)
    assert plan[0] is node
    assert plan[1] == kind
    assert (engine._fact_of(node) is not None) == (kind == engine._FACT)
    assert engine._plan_of(node) is plan  # decided once


def test_a_plan_left_under_a_reused_id_is_not_taken_for_another_node() -> None:
    node = _node({"not": {"ref": "a"}})
    other = _node({"ref": "b"})
    engine._PLANS[id(node)] = (other, engine._REF, "b")  # as if ``other`` had held this id
    try:
        plan = engine._plan_of(node)
    finally:
        engine._PLANS.pop(id(node), None)
    assert plan[0] is node
    assert plan[1] == engine._NOT
