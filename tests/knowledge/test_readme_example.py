"""The annotated rule in docs/writing-rules.md is the real rule (what it does, not its wording)."""

from __future__ import annotations

import re

import yaml

from cds.kb.loader import Knowledge
from cds.kb.schemas import Rule
from tests.conftest import REPO


def _readme_rule() -> Rule:
    text = (REPO / "docs" / "writing-rules.md").read_text(encoding="utf-8")
    section = text.split("## A rule, annotated", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block, "the annotated rule of docs/writing-rules.md is missing"
    return Rule.model_validate(yaml.safe_load(block.group(1)))


def test_readme_example_is_a_valid_rule_matching_the_file(knowledge: Knowledge) -> None:
    example = _readme_rule()
    real = knowledge.rules[example.id]
    assert example.logic == real.logic
    assert example.hooks == real.hooks
    assert example.status == real.status
    assert example.source.section == real.source.section
    assert example.card == real.card
    assert example.override_reasons == real.override_reasons
    assert example.suggestions[0] == real.suggestions[0]
    assert example.version == real.version, "bump the version in the docs example too"
