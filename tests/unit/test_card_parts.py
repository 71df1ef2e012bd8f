"""Cards compiled when the knowledge loads: a bad card stops the load, a call only fills in."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from cds.call.findings import resolve_findings
from cds.call.render import render_findings
from cds.engine.evaluate import Evidence, Fired
from cds.errors import KnowledgeError
from cds.kb.card_parts import BASE_STAND_IN
from cds.kb.loader import Knowledge, load_knowledge
from cds.protocol.wire import Card
from tests.conftest import REPO


def _copy(tmp_path: Path) -> tuple[Path, Path]:
    shutil.copytree(REPO / "knowledge", tmp_path / "knowledge")
    shutil.copytree(REPO / "cards", tmp_path / "cards")
    return tmp_path / "knowledge", tmp_path / "cards"


def _fired(knowledge: Knowledge, rule_id: str) -> Fired:
    evidence = (Evidence("bone pain", "Condition", "c1", "Pain", "2026-05-01"),)
    return Fired(rule=knowledge.rules[rule_id], evidence=evidence, absent=())


def test_a_card_the_card_model_refuses_fails_the_load_naming_its_rules(tmp_path: Path) -> None:
    """An override reason without a display passes its file's schema, not the Card model."""
    knowledge_dir, cards_dir = _copy(tmp_path)
    reasons = cards_dir / "override-reasons.yaml"
    reasons.write_text(
        reasons.read_text().replace(
            "display: The record data behind this card is wrong", 'display: ""'
        )
    )
    with pytest.raises(KnowledgeError) as raised:
        load_knowledge(knowledge_dir, cards_dir)
    problems = raised.value.problems
    assert any(
        p.startswith("knowledge/rules/abnormal-liver-tests-after-breast-cancer.yaml: card: ")
        and "Card model" in p
        and "display" in p
        for p in problems
    ), problems


def test_a_knowledge_file_that_writes_the_stand_in_origin_is_refused(tmp_path: Path) -> None:
    knowledge_dir, cards_dir = _copy(tmp_path)
    template = cards_dir / "templates" / "when-to-call-education.yaml"
    template.write_text(template.read_text().replace("call early", f"see {BASE_STAND_IN}/x"))
    with pytest.raises(KnowledgeError, match="reserved for the service's base URL"):
        load_knowledge(knowledge_dir, cards_dir)


def test_rendering_runs_no_model_check(
    knowledge: Knowledge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Card-model check ran when the knowledge loaded, not on a patient's call."""

    def refuse(*args: Any, **kwargs: Any) -> Card:
        raise AssertionError("a call checked a card against the model")

    monkeypatch.setattr(Card, "model_validate", refuse)
    fired = [_fired(knowledge, rule_id) for rule_id in sorted(knowledge.rules)]
    findings = resolve_findings(fired, knowledge.findings)
    assert any(f.finding is not None for f in findings)  # a merged card too
    base = "https://fresh-base.example/never-rendered-before"
    cards = render_findings(knowledge, findings, hook_instance="h", patient_id="p", base_url=base)
    assert len(cards) == len(findings)


def test_each_base_url_gets_its_own_urls_merged_cards_included(knowledge: Knowledge) -> None:
    fired = [_fired(knowledge, rule_id) for rule_id in sorted(knowledge.rules)]
    findings = resolve_findings(fired, knowledge.findings)
    merged = [f for f in findings if f.finding is not None]
    assert merged
    args: dict[str, Any] = {"hook_instance": "h", "patient_id": "p"}
    first = orjson.dumps(render_findings(knowledge, findings, base_url="https://a.example", **args))
    second = orjson.dumps(
        render_findings(knowledge, findings, base_url="https://b.example/cds/", **args)
    )
    assert b"https://a.example/" in first
    assert b"https://b.example/cds/knowledge/" in second
    for text in (first, second):
        assert BASE_STAND_IN.encode() not in text
    assert b"https://a.example" not in second
    assert first.replace(b"https://a.example", b"https://b.example/cds") == second
