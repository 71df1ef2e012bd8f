"""`cds evaluate --panel` on the example patients meets the burden the issue accepts;
`cds report burden` reads the same table from a database; `cds knowledge review` signs a rule
off, and an edit after the review makes it unreviewed (and silent when reviews are required)."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pytest

from cds.call.burden_panel import run_panel
from cds.cli import main
from cds.fhir.scenarios import example_patients
from cds.kb.loader import Knowledge, load_knowledge
from cds.kb.review import is_reviewed, review_state
from cds.settings import Settings
from tests.burden.records import base, call

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("examples")
    for scenario in example_patients(NOW.date()):
        (folder / f"{scenario.id}.json").write_bytes(orjson.dumps(scenario.bundle))
    return folder


def test_the_example_panel_meets_the_accepted_burden(
    knowledge: Knowledge, examples: Path, tmp_path: Path
) -> None:
    result = run_panel(knowledge, Settings(data_dir=tmp_path), examples, NOW)
    assert result.patients == len(example_patients(NOW.date()))
    for (hook, opening), counts in result.cards_per_open.items():
        assert max(counts) <= 3, (hook, opening)
        assert sum(counts) / len(counts) <= 1.5, (hook, opening)
    assert result.out_of_order == []
    assert result.info_repeated == []
    assert sum(row.repeats_prevented for row in result.report.rows) > 0
    assert {h.hook for h in result.report.hooks} == {
        "patient-view",
        "encounter-start",
        "encounter-discharge",
    }


def test_the_panel_and_the_report_print_the_same_table(
    examples: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path))
    assert main(["evaluate", "--panel", str(examples), "--now", "2026-06-01"]) == 0
    printed = capsys.readouterr().out
    assert "patient-view, open 1" in printed
    assert "urgency order (critical, warning, info): always" in printed
    assert "per 100" in printed
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["report", "burden", "--json"]) == 0
    document = orjson.loads(capsys.readouterr().out)
    assert document["hooks"] == []  # a fresh database: no calls yet


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    shutil.copytree(REPO / "knowledge", tmp_path / "knowledge")
    shutil.copytree(REPO / "cards", tmp_path / "cards")
    return tmp_path / "knowledge", tmp_path / "cards"


def test_review_signs_off_and_an_edit_reverts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    knowledge_dir, cards_dir = _tree(tmp_path)
    monkeypatch.setenv("CDS_KNOWLEDGE_DIR", str(knowledge_dir))
    monkeypatch.setenv("CDS_CARDS_DIR", str(cards_dir))
    rule_id = "when-to-call-education"
    path = knowledge_dir / "rules" / f"{rule_id}.yaml"
    before = path.read_text()
    assert (
        main(["knowledge", "review", rule_id, "--by", "Dr A. Reviewer", "--on", "2026-06-01"]) == 0
    )
    after = path.read_text()
    # only the review block changed
    assert after.split("review:")[0] == before.split("review:")[0]
    kb = load_knowledge(knowledge_dir, cards_dir)
    rule = kb.rules[rule_id]
    assert rule.review.reviewed_by == "Dr A. Reviewer"
    assert rule.review.reviewed_on == date(2026, 6, 1)
    assert rule.review.version == rule.version
    assert is_reviewed(kb, rule)
    assert review_state(kb, rule).startswith("reviewed by Dr A. Reviewer on 2026-06-01")
    strict = Settings(require_jwt=False, require_reviewed_rules=True)
    shown = call(kb, base(kb), settings=strict, now=NOW, hook="encounter-start")
    assert [f.key for f in shown.findings] == [rule_id]
    assert "(unreviewed rule)" not in shown.cards[0]["source"]["label"]
    # the card's text changes after the review: unreviewed again, and silent under the setting
    template = cards_dir / "templates" / "when-to-call-education.yaml"
    template.write_text(template.read_text().replace("call early", "call soon"))
    kb = load_knowledge(knowledge_dir, cards_dir)
    assert not is_reviewed(kb, kb.rules[rule_id])
    assert review_state(kb, kb.rules[rule_id]) == "unreviewed (changed since its review)"
    silent = call(kb, base(kb), settings=strict, now=NOW, hook="encounter-start")
    assert silent.cards == []
    assert (rule_id, "silent") in [(f.key, why) for f, why in silent.withheld]
    lenient = call(kb, base(kb), now=NOW, hook="encounter-start")
    assert "(unreviewed rule)" in lenient.cards[0]["source"]["label"]
