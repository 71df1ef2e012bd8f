"""Rule logic read aloud: every filter the engine applies shows up in the text."""

from __future__ import annotations

from typing import Any

import pytest

from cds.kb.logic import Node
from cds.kb.logic_text import describe_duration, describe_node, describe_rule
from cds.kb.schemas import Definition, Rule
from tests.unit.knowledge_tree import rule_data

DEFINITIONS = {
    "invasive-breast-cancer": Definition.model_validate(
        {"description": "invasive breast cancer", "logic": {"condition": {"valueset": "bc"}}}
    )
}


def _text(node: dict[str, Any]) -> str:
    return describe_node(Node.model_validate(node), DEFINITIONS)


@pytest.mark.parametrize(
    ("duration", "text"),
    [("P90D", "90 days"), ("P1Y", "1 year"), ("P1Y6M", "1 year 6 months"), ("P2W", "2 weeks")],
)
def test_durations(duration: str, text: str) -> None:
    assert describe_duration(duration) == text


@pytest.mark.parametrize(
    ("node", "fragments"),
    [
        ({"ref": "invasive-breast-cancer"}, ["invasive breast cancer [invasive-breast-cancer]"]),
        ({"ref": "undefined"}, ["undefined [undefined]"]),
        (
            {"condition": {"valueset": "pain", "status": "active", "within": "P90D"}},
            ["a condition in value set pain", "currently active", "in the last 90 days"],
        ),
        ({"condition": {"valueset": "pain", "older_than": "P1Y"}}, ["at least 1 year ago"]),
        (
            {
                "condition": {
                    "valueset": "pain",
                    "after": {"first": "invasive-breast-cancer", "offset": "P30D"},
                }
            },
            ["on or after the first invasive breast cancer [invasive-breast-cancer] plus 30 days"],
        ),
        (
            {"condition": {"valueset": "pain", "before": {"last": "invasive-breast-cancer"}}},
            ["before the last invasive breast cancer"],
        ),
        (
            {"observation": {"valueset": "her2", "latest": True, "value": {"valueset": "neg"}}},
            ["most recent", "coded answer in value set neg"],
        ),
        (
            {"observation": {"valueset": "ca", "value": {"gte": 10.5, "lt": 12, "unit": "mg/dL"}}},
            ["value ≥ 10.5 and < 12 mg/dL"],
        ),
        ({"observation": {"valueset": "ca", "interpretation": ["H", "HH"]}}, ["flagged H or HH"]),
        ({"observation": {"valueset": "ca", "count": {"at_least": 2}}}, ["at least 2 of them"]),
        (
            {
                "observation": {
                    "valueset": "bp",
                    "component": {"valueset": "sys", "value": {"gt": 180}},
                }
            },
            ["with a component in value set sys whose value > 180"],
        ),
        (
            {
                "observation": {
                    "valueset": "wt",
                    "trend": {"decrease_percent": 5, "within": "P6M"},
                }
            },
            ["at least 5% below the highest in the last 6 months"],
        ),
        (
            {
                "observation": {
                    "valueset": "report",
                    "components": [
                        {"valueset": "gene", "value": {"valueset": "brca"}},
                        {"valueset": "significance"},
                    ],
                }
            },
            [
                "with a component in value set gene whose coded answer in value set brca",
                "with a component in value set significance",
            ],
        ),
        ({"medication": {"valueset": "tam", "status": "current"}}, ["a medication", "current"]),
        ({"research-subject": {}}, ["enrolment in a research study"]),
        ({"draft-order": {"valueset": "parp"}}, ["a draft order being placed in value set parp"]),
        (
            {"patient": {"age_at_least": 18, "age_below": 75, "sex": ["female"]}},
            ["aged 18 or older", "younger than 75", "recorded sex female"],
        ),
        ({"patient": {"deceased": False}}, ["not deceased"]),
        (
            {"all": [{"ref": "invasive-breast-cancer"}, {"not": {"procedure": {"valueset": "x"}}}]},
            ["all of (invasive breast cancer", "no record of (a procedure in value set x)"],
        ),
        ({"any": [{"document": {"valueset": "ad"}}]}, ["any of (a document in value set ad)"]),
    ],
)
def test_nodes(node: dict[str, Any], fragments: list[str]) -> None:
    text = _text(node)
    for fragment in fragments:
        assert fragment in text


def test_rule_lists_inclusions_then_exclusions() -> None:
    rule = Rule.model_validate(rule_data())
    text = describe_rule(rule, DEFINITIONS)
    assert text.splitlines() == [
        "Rule test-rule v1.0.0 fires when all of these hold:",
        "- invasive breast cancer [invasive-breast-cancer]",
        "- a condition in value set bone-pain, dated in the last 90 days",
        "unless any of these holds:",
        "- known-bone-metastasis [known-bone-metastasis]",
        "where:",
        "- [invasive-breast-cancer] is a condition in value set bc",
    ]


def test_rule_spells_out_every_definition_it_reaches_once() -> None:
    definitions = {
        **DEFINITIONS,
        "new-pain": Definition.model_validate(
            {
                "description": "new pain",
                "logic": {
                    "condition": {"valueset": "pain", "after": {"first": "invasive-breast-cancer"}}
                },
            }
        ),
        "pain-or-cancer": Definition.model_validate(
            {
                "description": "pain or cancer",
                "logic": {"any": [{"ref": "new-pain"}, {"ref": "invasive-breast-cancer"}]},
            }
        ),
    }
    logic = {"inclusion": [{"ref": "pain-or-cancer"}, {"ref": "new-pain"}]}
    text = describe_rule(Rule.model_validate(rule_data(logic=logic)), definitions)
    where = text.split("where:\n", 1)[1].splitlines()
    assert [line.split("]", 1)[0] for line in where] == [
        "- [pain-or-cancer",
        "- [new-pain",
        "- [invasive-breast-cancer",
    ]
