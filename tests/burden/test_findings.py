"""One card per finding: supersession, the merged care-planning card, urgency order, and the
load-time check that rules which can fire on one coded record declare how they relate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cds.call.findings import fingerprint, resolve_findings
from cds.engine.evaluate import Evidence, Fired
from cds.errors import KnowledgeError
from cds.kb.loader import Knowledge, load_knowledge
from cds.protocol.wire import INDICATOR_RANK
from tests.burden.records import base, call, condition, observation

REPO = Path(__file__).resolve().parents[2]


def _fired_ids(result: Any) -> list[str]:
    return [rule.id for finding in result.findings for rule in (*finding.rules, *finding.covers)]


def _cord_compression(kb: Knowledge) -> list[dict[str, Any]]:
    """Known bone metastasis, new back pain, then a coded cord compression: the steroid card
    needs the known metastatic disease (issue 15)."""
    return [
        *base(kb),
        condition(kb, "met", "bone-metastasis", "2025-01-15"),
        condition(kb, "back", "back-pain", "2026-05-20"),
        condition(kb, "cord", "spinal-cord-compression", "2026-05-30"),
    ]


def test_cord_compression_gives_one_critical_card_that_names_the_warnings(
    knowledge: Knowledge,
) -> None:
    result = call(knowledge, _cord_compression(knowledge))
    # all three rules about the spine fired; one card shows for them (the known metastasis
    # also brings the care-planning card, a separate finding)
    assert {
        "back-pain-with-neurologic-signs",
        "new-symptom-at-known-metastasis",
        "cord-compression-without-steroid",
    } <= set(_fired_ids(result))
    keys = [f.key for f in result.findings]
    assert keys[0] == "back-pain-with-neurologic-signs"
    assert "new-symptom-at-known-metastasis" not in keys
    assert "cord-compression-without-steroid" not in keys
    assert result.cards[0]["indicator"] == "critical"
    assert "Also covers:" in result.cards[0]["detail"]


@pytest.mark.parametrize(
    ("extra", "shown", "hidden"),
    [
        (
            [("fracture", "pathologic-fracture", "2026-05-20"), ("hip", "bone-pain", "2026-05-21")],
            "pathologic-fracture-after-breast-cancer",
            "bone-pain-after-breast-cancer",
        ),
        (
            [("jaundice", "abdominal-pain-or-jaundice", "2026-05-20")],
            "abdominal-pain-or-jaundice-after-breast-cancer",
            "abnormal-liver-tests-after-breast-cancer",
        ),
        (
            [("confused", "confusion", "2026-05-25")],
            "severe-hypercalcemia-after-breast-cancer",
            "confusion-or-recurrent-headache-after-breast-cancer",
        ),
    ],
    ids=["fracture-with-hip-pain", "jaundice-with-high-bilirubin", "calcium-with-confusion"],
)
def test_one_card_for_one_finding(
    knowledge: Knowledge, extra: list[tuple[str, str, str]], shown: str, hidden: str
) -> None:
    resources = base(knowledge) + [condition(knowledge, *spec) for spec in extra]
    resources.append(observation(knowledge, "bili", "total-bilirubin", "2026-05-28", 3.1, "mg/dL"))
    resources.append(observation(knowledge, "ca", "calcium", "2026-05-28", 11.5, "mg/dL"))
    result = call(knowledge, resources)
    fired = set(_fired_ids(result))
    assert {shown, hidden} <= fired, fired  # both rules fire ...
    keys = [f.key for f in result.findings]
    assert shown in keys
    assert hidden not in keys
    (card,) = [c for c, f in zip(result.cards, result.findings, strict=True) if f.key == shown]
    assert knowledge.rules[hidden].title[:40] in card["detail"]


def test_the_planning_rules_for_metastatic_disease_merge_into_one_card(
    knowledge: Knowledge,
) -> None:
    resources = [*base(knowledge), condition(knowledge, "met", "bone-metastasis", "2026-03-01")]
    result = call(knowledge, resources)
    (planning,) = [f for f in result.findings if f.key == "metastatic-care-planning"]
    assert {r.id for r in planning.rules} == {
        "bone-metastasis-without-bone-agent",
        "metastatic-without-palliative-care",
        "metastatic-without-advance-directive",
        "metastatic-clinical-trial-discussion",
    }
    card = result.cards[[f.key for f in result.findings].index("metastatic-care-planning")]
    for rule in planning.rules:
        assert rule.finding is not None
        assert f"- {rule.finding.item}" in card["detail"]
    suggestion_uuids = [s["uuid"] for s in card["suggestions"]]
    assert len(suggestion_uuids) == len(set(suggestion_uuids)) >= 4
    assert len(result.cards) <= 3


def test_one_planning_rule_alone_keeps_its_own_card(knowledge: Knowledge) -> None:
    rule = knowledge.rules["metastatic-without-palliative-care"]
    (finding,) = resolve_findings([Fired(rule, (), ())], knowledge.findings)
    assert finding.key == rule.id
    assert finding.finding is None


def test_cards_come_critical_then_warning_then_info(knowledge: Knowledge) -> None:
    rules = [
        knowledge.rules[r]
        for r in (
            "mammogram-overdue-after-breast-cancer",
            "bone-pain-after-breast-cancer",
            "new-seizure-after-breast-cancer",
        )
    ]
    findings = resolve_findings([Fired(r, (), ()) for r in rules], knowledge.findings)
    ranks = [INDICATOR_RANK[f.indicator] for f in findings]
    assert ranks == sorted(ranks)
    assert findings[0].indicator == "critical"
    result = call(knowledge, _cord_compression(knowledge))
    ranks = [INDICATOR_RANK[card["indicator"]] for card in result.cards]
    assert ranks == sorted(ranks)


def test_the_fingerprint_changes_with_the_facts_only(knowledge: Knowledge) -> None:
    rule = knowledge.rules["bone-pain-after-breast-cancer"]
    one = Evidence("bone pain", "Condition", "c1", "Bone pain", "2026-05-01")
    two = Evidence("bone pain", "Condition", "c2", "Bone pain", "2026-05-20")
    assert fingerprint([Fired(rule, (one,), ())]) == fingerprint([Fired(rule, (one,), ())])
    assert fingerprint([Fired(rule, (one,), ())]) != fingerprint([Fired(rule, (one, two), ())])


def test_every_declared_relation_names_an_existing_rule(knowledge: Knowledge) -> None:
    for rule in knowledge.rules.values():
        for other in (*rule.supersedes, *rule.distinct_from):
            assert other in knowledge.rules, (rule.id, other)


def _copy_tree(tmp_path: Path) -> tuple[Path, Path]:
    import shutil

    shutil.copytree(REPO / "knowledge", tmp_path / "knowledge")
    shutil.copytree(REPO / "cards", tmp_path / "cards")
    return tmp_path / "knowledge", tmp_path / "cards"


def _edit_rule(folder: Path, rule_id: str, **changes: Any) -> None:
    path = folder / "rules" / f"{rule_id}.yaml"
    data = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_load_refuses_rules_sharing_a_trigger_code_without_a_relation(tmp_path: Path) -> None:
    knowledge_dir, cards_dir = _copy_tree(tmp_path)
    _edit_rule(knowledge_dir, "back-pain-with-neurologic-signs", supersedes=None)
    with pytest.raises(KnowledgeError) as raised:
        load_knowledge(knowledge_dir, cards_dir, with_cases=False)
    text = str(raised.value)
    assert "back-pain-with-neurologic-signs" in text
    assert "bone-pain-after-breast-cancer" in text
    assert "declares no relation" in text


def test_load_refuses_a_relation_to_an_unknown_rule_or_finding(tmp_path: Path) -> None:
    knowledge_dir, cards_dir = _copy_tree(tmp_path)
    _edit_rule(knowledge_dir, "when-to-call-education", supersedes=["no-such-rule"])
    _edit_rule(
        knowledge_dir,
        "tobacco-cessation-support",
        finding={"id": "no-such-finding", "item": "x y z"},
    )
    with pytest.raises(KnowledgeError) as raised:
        load_knowledge(knowledge_dir, cards_dir, with_cases=False)
    assert "no-such-rule" in str(raised.value)
    assert "no-such-finding" in str(raised.value)
