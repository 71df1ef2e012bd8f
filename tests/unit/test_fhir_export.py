"""`cds knowledge export --format fhir`: PlanDefinitions and ValueSets, validated as R4."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.plandefinition import PlanDefinition
from fhir.resources.R4B.valueset import ValueSet

from cds.cli import main
from cds.errors import KnowledgeError
from cds.fhir_export import READABLE_LANGUAGE, build_fhir_export
from cds.knowledge import Knowledge
from tests.unit.knowledge_tree import Tree, rule_data

BASE = "https://cds.example.org"


def _tree(tmp_path: Path) -> Tree:
    tree = Tree(tmp_path)
    draft = rule_data("draft-rule", status="draft", hooks=["patient-view", "encounter-start"])
    draft["source"] = {**draft["source"], "section": "Exams and Tests", "beyond_source": True}
    tree.rules["draft-rule"] = draft
    tree.services[0]["rules"] = ["test-rule", "draft-rule"]
    tree.services.append(
        {
            "id": "drafts-only",
            "hook": "encounter-start",
            "title": "Drafts only",
            "description": "A service whose only rule is a draft.",
            "rules": ["draft-rule"],
        }
    )
    return tree


@pytest.fixture
def exported(tmp_path: Path) -> dict[str, dict[str, Any]]:
    return build_fhir_export(_tree(tmp_path).load(), base_url=BASE)


def test_one_plan_definition_per_service_and_one_value_set_per_value_set(
    tmp_path: Path,
) -> None:
    knowledge = _tree(tmp_path).load()
    exported = build_fhir_export(knowledge, base_url=BASE)
    assert {n for n in exported if n.startswith("PlanDefinition-")} == {
        f"PlanDefinition-{s}.json" for s in knowledge.services
    }
    assert {n for n in exported if n.startswith("ValueSet-")} == {
        f"ValueSet-{v}.json" for v in knowledge.valuesets
    }
    assert "Bundle-knowledge.json" in exported


def test_plan_definition_is_an_eca_rule_triggered_by_the_hook(
    exported: dict[str, dict[str, Any]],
) -> None:
    plan = exported["PlanDefinition-test-service.json"]
    PlanDefinition.model_validate(plan)
    assert plan["type"]["coding"][0]["code"] == "eca-rule"
    assert plan["url"] == f"{BASE}/fhir/PlanDefinition/test-service"
    assert plan["name"] == "TestService"
    assert plan["status"] == "active"
    assert [a["id"] for a in plan["action"]] == ["test-rule", "draft-rule"]
    for action in plan["action"]:
        assert action["trigger"] == [{"type": "named-event", "name": "patient-view"}]


def test_each_action_carries_its_logic_as_readable_conditions(
    exported: dict[str, dict[str, Any]],
) -> None:
    action = exported["PlanDefinition-test-service.json"]["action"][0]
    conditions = action["condition"]
    assert len(conditions) == 3  # two inclusions, one exclusion
    for condition in conditions:
        assert condition["kind"] == "applicability"
        expression = condition["expression"]
        assert expression["language"] == READABLE_LANGUAGE
        assert "test-rule" in expression["description"]
        assert expression["name"].startswith("test-rule.")
    texts = [c["expression"]["expression"] for c in conditions]
    assert texts[0] == "invasive breast cancer [invasive-breast-cancer]"
    assert "value set bone-pain" in texts[1]
    assert "90 days" in texts[1]
    assert texts[2].startswith("it is not the case that: known bone metastasis")
    assert action["code"][0]["coding"][0]["code"] == "test-rule"
    assert "fires when all of these hold" in action["textEquivalent"]


def test_each_action_cites_the_source_section_and_the_rule_status(
    exported: dict[str, dict[str, Any]],
) -> None:
    plan = exported["PlanDefinition-test-service.json"]
    active, draft = plan["action"]
    citation = active["documentation"][0]
    assert citation["type"] == "citation"
    assert citation["label"] == "When to Call a Doctor"
    assert citation["citation"] == "A test summary written in our own words."
    assert "goes beyond" in draft["documentation"][0]["citation"]
    cited = {a["label"] for a in plan["relatedArtifact"] if "label" in a}
    assert cited == {"When to Call a Doctor", "Exams and Tests"}

    def extension(action: dict[str, Any], name: str) -> Any:
        (found,) = [e for e in action["extension"] if e["url"].endswith(f"/{name}")]
        return next(v for k, v in found.items() if k.startswith("value"))

    assert extension(active, "rule-status") == "active"
    assert extension(draft, "rule-status") == "draft"
    assert extension(active, "review-state") == "unreviewed"
    assert extension(active, "card-indicator") == "warning"
    assert exported["PlanDefinition-drafts-only.json"]["status"] == "draft"


def test_suggestions_become_create_sub_actions(exported: dict[str, dict[str, Any]]) -> None:
    action = exported["PlanDefinition-test-service.json"]["action"][0]
    (sub,) = action["action"]
    assert sub["type"]["coding"][0]["code"] == "create"
    assert sub["title"] == "Order a bone scan"
    assert sub["code"][0]["coding"][0]["code"] == "39818-0"


def test_value_sets_list_codes_by_system_and_families_as_filters(
    exported: dict[str, dict[str, Any]],
) -> None:
    vs = exported["ValueSet-breast-cancer.json"]
    ValueSet.model_validate(vs)
    includes = vs["compose"]["include"]
    by_system = {i["system"]: i for i in includes if "concept" in i}
    snomed = by_system["http://snomed.info/sct"]["concept"]
    assert [(c["code"], c["display"]) for c in snomed] == [
        ("254837009", "Malignant neoplasm of breast")
    ]
    assert [c["code"] for c in by_system["http://hl7.org/fhir/sid/icd-10-cm"]["concept"]] == [
        "Z85.3"
    ]
    families = [i for i in includes if "filter" in i]
    assert families == [
        {
            "system": "http://hl7.org/fhir/sid/icd-10-cm",
            "filter": [{"property": "concept", "op": "is-a", "value": "C50"}],
        }
    ]
    assert "prefix" in vs["description"]
    assert vs["status"] == "active"  # used by the active rule


def test_value_set_include_and_status_of_unused_value_sets(
    exported: dict[str, dict[str, Any]],
) -> None:
    symptoms = exported["ValueSet-bone-symptoms.json"]
    assert {"valueSet": [f"{BASE}/fhir/ValueSet/bone-pain"]} in symptoms["compose"]["include"]
    assert symptoms["status"] == "draft"  # no active rule uses it
    assert exported["ValueSet-bone-pain.json"]["status"] == "active"


def test_every_exported_resource_is_valid_r4(exported: dict[str, dict[str, Any]]) -> None:
    models = {"PlanDefinition": PlanDefinition, "ValueSet": ValueSet, "Bundle": Bundle}
    for name, resource in exported.items():
        models[resource["resourceType"]].model_validate(resource)
        assert name.startswith(resource["resourceType"])


def test_what_the_r4b_models_refuse_is_reported_with_file_and_field(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.valuesets["bone-pain"]["codes"][0]["display"] = ""
    with pytest.raises(KnowledgeError) as caught:
        build_fhir_export(tree.load(), base_url=BASE)
    assert any(
        p.startswith("FHIR export: ValueSet-bone-pain.json: compose.include.0.concept.0.display")
        for p in caught.value.problems
    ), caught.value.problems


def test_invalid_fhir_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    tree = Tree(tmp_path / "tree")
    long_id = "a-service-id-" + "x" * 60  # FHIR ids are at most 64 characters
    tree.services[0]["id"] = long_id
    knowledge = tree.load()
    with pytest.raises(KnowledgeError) as caught:
        build_fhir_export(knowledge, base_url=BASE)
    assert any(f"PlanDefinition-{long_id}.json: id" in p for p in caught.value.problems)
    from cds.fhir_export import write_fhir_export

    out = tmp_path / "out"
    with pytest.raises(KnowledgeError):
        write_fhir_export(knowledge, out, base_url=BASE)
    assert not out.exists()


def test_the_command_writes_valid_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = _tree(tmp_path / "tree").write()
    monkeypatch.setenv("CDS_KNOWLEDGE_DIR", str(tree.knowledge_dir))
    monkeypatch.setenv("CDS_CARDS_DIR", str(tree.cards_dir))
    out = tmp_path / "out"
    assert main(["knowledge", "export", "--format", "fhir", "--base-url", BASE, str(out)]) == 0
    assert "2 PlanDefinitions" in capsys.readouterr().out
    files = sorted(out.iterdir())
    assert len(files) == 2 + len(tree.valuesets) + 1
    bundle = orjson.loads((out / "Bundle-knowledge.json").read_bytes())
    Bundle.model_validate(bundle)
    assert len(bundle["entry"]) == len(files) - 1


def test_the_repository_knowledge_exports(knowledge: Knowledge) -> None:
    exported = build_fhir_export(knowledge, base_url=BASE)
    plans = [r for r in exported.values() if r["resourceType"] == "PlanDefinition"]
    assert len(plans) == len(knowledge.services)
    hooks = {a["trigger"][0]["name"] for p in plans for a in p["action"]}
    assert hooks <= {s.spec.hook for s in knowledge.services.values()}
