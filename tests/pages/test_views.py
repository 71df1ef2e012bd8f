"""The plain view modules of the pages: markdown safety, logic in words, charts, orders, windows."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from cds.errors import BadRequest, PayloadTooLarge
from cds.kb.loader import Knowledge, Service
from cds.kb.logic import Node
from cds.kb.prefetch_plan import plan_prefetch
from cds.kb.schemas import ServiceSpec
from cds.settings import Settings
from cds.store.call_log import NO_CALL_LOG
from cds.web.analytics_view import parse_window
from cds.web.charts import grouped_bar_chart
from cds.web.draft_orders import DRAFT_ORDERS, draft_medication_request
from cds.web.examples import SYNTHEA_GROUP, example_catalogue
from cds.web.logic_words import Phrase, logic_phrases, node_phrase, valuesets_of_rule
from cds.web.markdown import render_markdown
from cds.web.preview import parse_upload, patient_banner, preview_resources


@pytest.mark.parametrize(
    ("markdown", "forbidden", "kept"),
    [
        ("<script>alert(1)</script>", "<script", "&lt;script&gt;"),
        ('<img src=x onerror="alert(1)">', "<img", "&lt;img"),
        ("[click](javascript:alert(1))", 'href="javascript', "click"),
        ('<a href="https://x.org" onclick="y()">a</a>', "<a href", "&lt;a"),
        ("**bold** and `code`", "<script", "<strong>bold</strong>"),
    ],
)
def test_markdown_never_passes_raw_html(markdown: str, forbidden: str, kept: str) -> None:
    html = render_markdown(markdown)
    assert forbidden not in html
    assert kept in html


def test_markdown_links_get_safe_rel() -> None:
    html = render_markdown("[site](https://example.org/page)")
    assert 'href="https://example.org/page"' in html
    assert 'rel="noopener noreferrer"' in html


def _walk(phrases: list[Phrase]) -> Iterator[Phrase]:
    for phrase in phrases:
        yield phrase
        yield from _walk(phrase.children)


def _texts(phrases: list[Phrase]) -> list[str]:
    return [phrase.text for phrase in _walk(phrases)]


def test_logic_in_words_spells_out_definitions_and_filters(knowledge: Knowledge) -> None:
    inclusion, exclusion = logic_phrases(
        knowledge, knowledge.rules["bone-pain-after-breast-cancer"]
    )
    lines = _texts(inclusion)
    assert any("definition “invasive-breast-cancer”), which means:" in line for line in lines)
    pain = next(p for p in _walk(inclusion) if p.valueset == "bone-pain")
    assert "dated in the last 90 days" in pain.text
    assert "on or after the first" in pain.text
    assert any("known-bone-metastasis" in line for line in _texts(exclusion))


def test_logic_words_nest_combinators(knowledge: Knowledge) -> None:
    node = Node.model_validate(
        {
            "any": [
                {"not": {"patient": {"age_at_least": 18}}},
                {
                    "all": [
                        {"ref": "invasive-breast-cancer"},
                        {"condition": {"valueset": "bone-pain"}},
                    ]
                },
            ]
        }
    )
    phrase = node_phrase(knowledge, node)
    assert phrase.text == "at least one of the following holds:"
    negated, both = phrase.children
    assert negated.text == "there is no record of:"
    assert negated.children[0].text == "the patient is aged 18 or older"
    assert both.text == "all of the following hold:"
    assert both.children[0].children, "a definition is spelled out under its name"
    assert both.children[1].valueset == "bone-pain"


def test_every_rule_reads_in_words_and_names_its_value_sets(knowledge: Knowledge) -> None:
    for rule in knowledge.rules.values():
        inclusion, _ = logic_phrases(knowledge, rule)
        assert _texts(inclusion), rule.id
        for vs_id in valuesets_of_rule(knowledge, rule):
            assert vs_id in knowledge.valueset_files, (rule.id, vs_id)


def test_a_rule_page_names_the_value_sets_of_every_component(knowledge: Knowledge) -> None:
    """``components`` (several, on one observation) are read like ``component``: the BRCA rule
    reaches them through a definition, and its page once left all four out."""
    found = valuesets_of_rule(knowledge, knowledge.rules["brca-metastatic-without-parp-inhibitor"])
    for vs_id in (
        "gene-studied",
        "brca-genes",
        "variant-clinical-significance",
        "variant-pathogenic",
    ):
        assert vs_id in found
    assert len(found) == len(set(found))


def test_bar_chart_scales_bars_to_a_round_maximum() -> None:
    chart = grouped_bar_chart(
        [("rule-a", [7, 3, 4]), ("rule-b", [2, 0, 2])], ("shown", "accepted", "overridden"), "d"
    )
    assert [t.label for t in chart.ticks] == ["0", "5", "10"]
    widths = {(b.title.split(":")[0], b.series): b.width for b in chart.bars}
    assert widths[("rule-a", "shown")] == pytest.approx(7 / 10 * 420)  # the plot is 420 px wide
    assert widths[("rule-b", "accepted")] == 0
    assert len(chart.bars) == 6
    assert chart.height > max(b.y + b.height for b in chart.bars)


def test_bar_chart_wraps_long_labels_on_two_lines_and_cuts_the_rest() -> None:
    title = "Bone pain in a patient with a history of breast cancer: consider imaging now"
    chart = grouped_bar_chart([(title, [1]), ("short", [1])], ("shown",), "d")
    long_label, short_label = chart.labels
    assert len(long_label.lines) == 2
    assert long_label.lines[0] == "Bone pain in a patient with a"
    assert long_label.lines[1].endswith("…")
    assert all(len(line) <= 30 for line in long_label.lines)
    assert short_label.lines == ("short",)


@pytest.mark.parametrize(
    ("peak", "ticks"),
    [
        (1, ["0", "1"]),
        (2, ["0", "1", "2"]),
        (3, ["0", "1", "2", "3", "4", "5"]),
        (5, ["0", "1", "2", "3", "4", "5"]),
        (7, ["0", "5", "10"]),
        (40, ["0", "25", "50"]),
    ],
)
def test_bar_chart_ticks_are_whole_numbers(peak: int, ticks: list[str]) -> None:
    chart = grouped_bar_chart([("rule", [peak])], ("shown",), "d")
    assert [t.label for t in chart.ticks] == ticks


@pytest.mark.parametrize(
    ("key", "rxcui"),
    [
        ("olaparib", "1597582"),
        ("trastuzumab", "224905"),
        ("tamoxifen", "10324"),
        ("oxycodone", "7804"),
        ("capecitabine", "194000"),
    ],
)
def test_draft_orders_carry_rxnorm_ingredient_codes(key: str, rxcui: str) -> None:
    resource = draft_medication_request(DRAFT_ORDERS[key], "p1", date(2026, 6, 1))
    assert resource["status"] == "draft"
    assert resource["subject"] == {"reference": "Patient/p1"}
    coding = resource["medicationCodeableConcept"]["coding"][0]
    assert coding == {
        "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
        "code": rxcui,
        "display": key,
    }


def test_analytics_window_defaults_and_errors() -> None:
    window = parse_window("", "", date(2026, 6, 30))
    assert (window.first_day, window.last_day) == (date(2026, 6, 1), date(2026, 6, 30))
    assert window.until.isoformat() == "2026-07-01T00:00:00+00:00"
    with pytest.raises(BadRequest, match="until is not a date"):
        parse_window("", "2026-13-01", date(2026, 6, 30))
    with pytest.raises(BadRequest, match="on or before"):
        parse_window("2026-07-01", "2026-06-01", date(2026, 6, 30))


def test_upload_parsing() -> None:
    request = parse_upload(b'{"hook": "patient-view", "context": {}}', 100)
    assert request.hook_request is not None
    bundle = parse_upload(b'{"resourceType": "Patient", "id": "p"}', 100)
    assert bundle.resources == [{"resourceType": "Patient", "id": "p"}]
    with pytest.raises(PayloadTooLarge):
        parse_upload(b"{}" * 60, 100)


def test_patient_banner_reads_names_defensively() -> None:
    banner = patient_banner(
        [{"resourceType": "Patient", "name": [7, {"given": ["Ada", 3], "family": "Lind"}]}]
    )
    assert banner.name == "Ada Lind"
    assert patient_banner([]).name == "(no name)"


def test_catalogue_lists_scenarios_and_cases_without_synthea(
    knowledge: Knowledge, tmp_path: Path
) -> None:
    examples = example_catalogue(knowledge, tmp_path / "absent", date(2026, 6, 1))
    keys = {e.key for e in examples}
    assert "scenario:breast-cancer-new-back-pain" in keys
    assert all(
        f"case:{rule}:{case.name}" in keys
        for rule, cases in knowledge.cases.items()
        for case in cases
    )
    assert not any(e.group == SYNTHEA_GROUP for e in examples)


@pytest.mark.shared
def test_catalogue_lists_synthea_patients(knowledge: Knowledge, shared_dir: Path) -> None:
    folder = shared_dir / "data" / "synthea"
    synthea = [
        e
        for e in example_catalogue(knowledge, folder, date(2026, 6, 1))
        if e.group == SYNTHEA_GROUP
    ]
    assert 0 < len(synthea) <= len(list(folder.glob("*.json.bz2")))
    first = synthea[0]
    assert "born" in first.title
    resources = first.load()
    assert any(r.get("resourceType") == "Patient" for r in resources)


def test_order_hook_preview_sends_the_draft_order(knowledge: Knowledge) -> None:
    """With a service on order-select, the chosen draft order reaches it in context.draftOrders."""
    rule = knowledge.rules["bone-pain-after-breast-cancer"]
    spec = ServiceSpec(
        id="order-test", hook="order-select", title="t", description="d", rules=(rule.id,)
    )
    plan = plan_prefetch("order-select", [rule], knowledge.definitions, knowledge.valuesets)
    with_orders = dataclasses.replace(
        knowledge, services={"order-test": Service(spec=spec, rules=(rule,), prefetch=plan)}
    )
    resources = [{"resourceType": "Patient", "id": "p1", "gender": "female"}]

    async def run(order: str | None) -> Any:
        return await preview_resources(
            resources,
            hook="order-select",
            draft_order=DRAFT_ORDERS[order] if order else None,
            knowledge=with_orders,
            settings=Settings(require_jwt=False),
            call_log=NO_CALL_LOG,
            now=datetime(2026, 6, 1, tzinfo=UTC),
        )

    result = asyncio.run(run("olaparib"))
    (service_run,) = result.runs
    assert service_run.error is None
    request = json.loads(service_run.request_json)
    (entry,) = request["context"]["draftOrders"]["entry"]
    assert entry["resource"]["medicationCodeableConcept"]["coding"][0]["code"] == "1597582"
    assert request["context"]["selections"] == ["MedicationRequest/draft-olaparib"]
    with pytest.raises(BadRequest, match="pick a draft order"):
        asyncio.run(run(None))


def test_catalogue_marks_the_synthea_patients_with_breast_cancer(
    knowledge: Knowledge, tmp_path: Path
) -> None:
    import bz2

    from cds.web.examples import SYNTHEA_BREAST_CANCER_GROUP

    def record(family: str, *codes: str) -> bytes:
        patient = {"resourceType": "Patient", "id": family, "name": [{"family": family}]}
        conditions = [
            {
                "resourceType": "Condition",
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": c}]},
            }
            for c in codes
        ]
        entries = [{"resource": r} for r in (patient, *conditions)]
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        return bz2.compress(json.dumps(bundle, indent=1).encode())

    (tmp_path / "with-cancer.json.bz2").write_bytes(record("Withcancer", "254837009"))
    (tmp_path / "without.json.bz2").write_bytes(record("Without", "44054006"))
    examples = example_catalogue(knowledge, tmp_path, date(2026, 6, 1), wait=True)
    marked = [e for e in examples if e.group == SYNTHEA_BREAST_CANCER_GROUP]
    others = [e for e in examples if e.group == SYNTHEA_GROUP]
    assert [e.key for e in marked] == ["synthea:with-cancer"]
    assert marked[0].title.endswith("· breast cancer")
    assert [e.key for e in others] == ["synthea:without"]
