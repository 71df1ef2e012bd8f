"""Rule cases can say which draft orders are selected at order-select (``selections``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cds.call.rule_cases import run_case
from cds.kb.schemas import Case
from tests.unit.knowledge_tree import Tree, rule_data

_RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _draft(rid: str, code: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": _RXNORM, "code": code}]},
    }


def _case(**fields: Any) -> dict[str, Any]:
    return {
        "name": "in-selected",
        "description": "A draft tamoxifen order at order-select.",
        "hook": "order-select",
        "draft_orders": [_draft("tam", "198240"), _draft("other", "26225")],
        "expect": {"fires": True},
        **fields,
    }


def _tree(tmp_path: Path) -> Tree:
    tree = Tree(tmp_path)
    tree.valuesets["tamoxifen"] = {
        "title": "Tamoxifen",
        "description": "Tamoxifen ingredient for tests.",
        "codes": [{"system": "rxnorm", "code": "10324", "display": "tamoxifen", "verified": "V"}],
    }
    tree.rules = {
        "order-rule": rule_data(
            "order-rule",
            hooks=["order-select"],
            logic={"inclusion": [{"draft-order": {"valueset": "tamoxifen"}}]},
        )
    }
    tree.services = []
    return tree


def test_a_selection_must_name_a_draft_order() -> None:
    with pytest.raises(ValidationError, match="name no draft order"):
        Case.model_validate(_case(selections=["MedicationRequest/missing"]))


@pytest.mark.parametrize(
    ("selections", "fires"),
    [
        ((), True),  # no selections written: every draft counts as selected
        (("MedicationRequest/tam",), True),
        (("MedicationRequest/other",), False),  # the tamoxifen draft is not selected
    ],
)
def test_only_selected_drafts_count_at_order_select(
    tmp_path: Path, selections: tuple[str, ...], fires: bool
) -> None:
    knowledge = _tree(tmp_path).load()
    case = Case.model_validate(_case(selections=list(selections)))
    result = run_case(knowledge, knowledge.rules["order-rule"], case)
    assert result.fired is fires, result.message
