"""Rules that go beyond the source document say so, and name the guideline used (issue 15)."""

from __future__ import annotations

import re

import pytest

from cds.kb.loader import Knowledge

# Rules whose thresholds, intervals or checks come from guidelines, not from the document.
BEYOND_THE_SOURCE = (
    "abnormal-liver-tests-after-breast-cancer",
    "appetite-fatigue-or-weight-loss-after-breast-cancer",
    "back-pain-with-neurologic-signs",
    "chemo-or-opioid-order-education",
    "cord-compression-without-steroid",
    "distress-or-depression-support",
    "endocrine-order-with-negative-er-pr",
    "her2-order-with-negative-her2",
    "hypercalcemia-after-breast-cancer",
    "mammogram-overdue-after-breast-cancer",
    "parp-order-without-brca-result",
    "severe-hypercalcemia-after-breast-cancer",
    "uncontrolled-pain-in-breast-cancer",
)
_GUIDELINE = re.compile(r"guideline used: .*\b(19|20)\d\d\b", re.IGNORECASE | re.DOTALL)


@pytest.mark.parametrize("rule_id", BEYOND_THE_SOURCE)
def test_rule_is_marked_beyond_the_source(rule_id: str, knowledge: Knowledge) -> None:
    assert knowledge.rules[rule_id].source.beyond_source


def test_every_rule_beyond_the_source_names_its_guideline_and_year(knowledge: Knowledge) -> None:
    unnamed = [
        rule.id
        for rule in knowledge.rules.values()
        if rule.source.beyond_source and not _GUIDELINE.search(rule.rationale)
    ]
    assert not unnamed, f"beyond_source without 'Guideline used: <name> (<year>)': {unnamed}"
