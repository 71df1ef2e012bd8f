"""What evaluation produces: no cards for the deceased, determinism, and the explanation."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from cds.call.render import escape_markdown, render_cards
from cds.engine.evaluate import evaluate
from cds.kb.loader import Knowledge
from tests.unit.knowledge_tree import (
    PATIENT,
    REPO,
    SNOMED,
    Tree,
    bone_pain,
    breast_cancer,
    condition,
    make_rule,
    record_of,
)


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Knowledge:
    return Tree(tmp_path_factory.mktemp("engine-output")).load()


FIRING = [breast_cancer(), bone_pain("2026-05-01")]


@pytest.mark.parametrize(
    "dead", [{"deceasedBoolean": True}, {"deceasedDateTime": "2026-01-01T10:00:00Z"}]
)
def test_deceased_patients_get_no_cards_at_all(kb: Knowledge, dead: dict[str, Any]) -> None:
    rule = kb.rules["test-rule"]
    assert evaluate(kb, [rule], record_of(kb, FIRING)).fired
    # even a rule that asks for nothing but a living patient's data gets nothing
    anyone = make_rule([{"patient": {"age_at_least": 0}}])
    result = evaluate(kb, [rule, anyone], record_of(kb, FIRING, patient={**PATIENT, **dead}))
    assert result.fired == []
    assert set(result.not_evaluated.values()) == {"patient is deceased"}


def test_deceased_through_a_whole_service_call(kb: Knowledge, tmp_path: Path) -> None:

    from cds.call.request_builder import request_from_resources
    from cds.call.service_call import run_offline
    from cds.settings import Settings
    from tests.unit.knowledge_tree import NOW

    service = kb.services["test-service"]
    settings = Settings(data_dir=tmp_path, require_jwt=False)

    def call(patient: dict[str, Any]) -> int:
        body = request_from_resources(
            [patient, *FIRING], service.prefetch, hook="patient-view", hook_instance="h1"
        )
        result = run_offline(service, body, knowledge=kb, settings=settings, now=NOW)
        return len(result.response.cards)

    assert call(PATIENT) == 1
    assert call({**PATIENT, "deceasedBoolean": True}) == 0


def _cards(kb: Knowledge, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rule = kb.rules["test-rule"]
    fired = evaluate(kb, [rule], record_of(kb, resources)).fired
    return render_cards(kb, fired, hook_instance="h1", patient_id="p1", base_url="http://x")


def test_same_record_and_knowledge_give_the_same_cards(kb: Knowledge) -> None:
    many = [*FIRING, *(bone_pain(f"2026-05-{d:02d}", rid=f"pain-{d}") for d in range(1, 20))]
    first = _cards(kb, many)
    assert first
    assert _cards(kb, many) == first
    assert _cards(kb, list(many)) == first


_DETERMINISM_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from tests.unit.knowledge_tree import Tree, record_of, condition, breast_cancer, ICD, SNOMED
    from cds.engine.evaluate import evaluate
    kb = Tree(Path(sys.argv[1])).load()
    pains = [condition(f"p{i}", ICD if i % 2 else SNOMED, "M54.50" if i % 2 else "12584003",
                       "2026-05-01") for i in range(12)]
    fired = evaluate(kb, [kb.rules["test-rule"]], record_of(kb, [breast_cancer(), *pains])).fired
    print(json.dumps([[e.resource_id for e in f.evidence] for f in fired]))
    """
)


def test_evidence_order_does_not_depend_on_the_hash_seed(tmp_path: Path) -> None:
    """Value sets are sets; evidence must come out in record order whatever the hash seed."""
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", _DETERMINISM_SCRIPT, str(tmp_path / seed)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1
    assert '"bc", "p0", "p1", "p2"' in outputs.pop()


def test_explanation_cites_ids_dates_displays_rule_and_section(kb: Knowledge) -> None:
    (card,) = _cards(kb, FIRING)
    detail = card["detail"]
    assert "2019-03-04" in detail
    assert "2026-05-01" in detail
    assert "Malignant neoplasm of breast" in detail
    assert "invasive breast cancer" in detail  # the definition's description labels the fact
    # The rule, its version and source are one link away, not in the detail.
    assert "test-rule" not in detail
    assert card["source"]["label"].endswith("When to Call a Doctor")
    assert "(unreviewed rule)" in card["source"]["label"]
    assert card["source"]["url"] == "http://x/knowledge/test-rule"
    assert card["source"]["topic"]["code"] == "test-rule"
    assert card["summary"] == "Test card: consider an evaluation"


def test_explanation_lists_what_was_absent(kb: Knowledge) -> None:
    rule = make_rule([{"ref": "invasive-breast-cancer"}, {"not": {"ref": "known-bone-metastasis"}}])
    fired = evaluate(kb, [rule], record_of(kb, [breast_cancer()])).fired
    (card,) = render_cards(kb, fired, hook_instance="h", patient_id="p1", base_url="http://x")
    assert "No known bone metastasis on record" in card["detail"]


def test_record_text_in_the_explanation_is_escaped_markdown(kb: Knowledge) -> None:
    hostile = condition(
        "evil](javascript:alert(1))",
        SNOMED,
        "12584003",
        "2026-05-01",
        "*now* [a](http://e.example) <script>x</script>\n# heading",
    )
    (card,) = _cards(kb, [breast_cancer(), hostile])
    detail = card["detail"]
    assert r"\*now\* \[a\]\(http://e.example\)" in detail
    assert r"\<script\>x\</script\>" in detail
    assert r"\# heading" in detail
    assert "<script>" not in detail
    assert "](javascript" not in detail


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a*b", r"a\*b"),
        ("_x_", r"\_x\_"),
        ("[l](u)", r"\[l\]\(u\)"),
        ("<b>", r"\<b\>"),
        ("`c`", r"\`c\`"),
        ("a\nb", "a b"),
        ("back\\slash", "back\\\\slash"),
        ("plain text 12.5 mg/dL", "plain text 12.5 mg/dL"),
    ],
)
def test_escape_markdown(raw: str, escaped: str) -> None:
    assert escape_markdown(raw) == escaped


def test_card_ids_are_stable_per_hook_instance_and_rule(kb: Knowledge) -> None:
    first = _cards(kb, FIRING)[0]
    again = _cards(kb, FIRING)[0]
    assert first["uuid"] == again["uuid"]
    assert first["suggestions"][0]["uuid"] == again["suggestions"][0]["uuid"]
    assert first["suggestions"][0]["actions"][0]["resource"]["subject"] == {
        "reference": "Patient/p1"
    }


def _without_display(resource: dict[str, Any]) -> dict[str, Any]:
    for coding in resource["code"]["coding"]:
        coding.pop("display", None)
    return resource


def test_evidence_names_a_code_without_display_as_the_value_set_does(kb: Knowledge) -> None:
    icd = condition("icd", "http://hl7.org/fhir/sid/icd-10-cm", "C50.911", "2019-03-04")
    records = [
        [_without_display(breast_cancer()), _without_display(bone_pain("2026-05-01"))],
        [_without_display(icd), _without_display(bone_pain("2026-05-01"))],
    ]
    lines = [
        [
            e.line()
            for e in evaluate(kb, [kb.rules["test-rule"]], record_of(kb, r)).fired[0].evidence
        ]
        for r in records
    ]
    assert any("Malignant neoplasm of breast on 2019-03-04" in line for line in lines[0])
    assert any("Bone pain on 2026-05-01" in line for line in lines[0])
    assert any("C50 family: C50911 on 2019-03-04" in line for line in lines[1])
    # a display the record has is kept, even where the value set words it otherwise
    named = condition("bc", SNOMED, "254837009", "2019-03-04", "Breast cancer, left")
    fired = evaluate(kb, [kb.rules["test-rule"]], record_of(kb, [named, *FIRING[1:]])).fired
    assert "Breast cancer, left" in fired[0].evidence[0].line()


def test_evidence_without_a_display_shows_the_value_set_display(kb: Knowledge) -> None:
    """A record coding Z85.3 with no display reads as its value set's display, not "Z853"."""
    history = condition("hx", "http://hl7.org/fhir/sid/icd-10-cm", "Z85.3", "2019-03-04")
    history["code"]["coding"][0].pop("display")
    rule = make_rule([{"ref": "invasive-breast-cancer"}])
    result = evaluate(kb, [rule], record_of(kb, [history]))
    (shown,) = result.fired[0].evidence
    assert shown.display == "Personal history of malignant neoplasm of breast"
    # a code met only through a family takes the family's display
    family = condition("c50", "http://hl7.org/fhir/sid/icd-10-cm", "C50.911", "2019-03-04")
    family["code"]["coding"][0].pop("display")
    result = evaluate(kb, [rule], record_of(kb, [family]))
    assert result.fired[0].evidence[0].display == "C50 family: C50911"
    # a display the record sends is kept
    named = condition("named", "http://hl7.org/fhir/sid/icd-10-cm", "Z85.3", "2019-03-04", "Hx")
    result = evaluate(kb, [rule], record_of(kb, [named]))
    assert result.fired[0].evidence[0].display == "Hx"
