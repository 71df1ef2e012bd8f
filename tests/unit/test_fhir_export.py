"""`cds knowledge export --format fhir`: PlanDefinitions and ValueSets, validated as R4."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.activitydefinition import ActivityDefinition
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.plandefinition import PlanDefinition
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.structuredefinition import StructureDefinition
from fhir.resources.R4B.valueset import ValueSet

from cds.cli import main
from cds.errors import KnowledgeError
from cds.fhir.export import EXTENSIONS, READABLE_LANGUAGE, build_fhir_export
from cds.kb.loader import Knowledge
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
    assert len(exported["Bundle-knowledge.json"]["entry"]) == len(exported) - 1


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
    models: dict[str, type[Resource]] = {
        "PlanDefinition": PlanDefinition,
        "ValueSet": ValueSet,
        "Bundle": Bundle,
        "ActivityDefinition": ActivityDefinition,
        "StructureDefinition": StructureDefinition,
    }
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
    from cds.fhir.export import write_fhir_export

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
    said = capsys.readouterr().out
    assert "2 PlanDefinitions" in said
    assert "validated with the FHIR 4.3.0 (R4B) models of fhir.resources" in said
    files = sorted(out.iterdir())
    activities = sum(len(r["suggestions"]) for r in tree.rules.values())
    assert len(files) == 2 + len(tree.valuesets) + activities + len(EXTENSIONS) + 1
    bundle = orjson.loads((out / "Bundle-knowledge.json").read_bytes())
    Bundle.model_validate(bundle)
    assert len(bundle["entry"]) == len(files) - 1


def test_the_repository_knowledge_exports(knowledge: Knowledge) -> None:
    exported = build_fhir_export(knowledge, base_url=BASE)
    plans = [r for r in exported.values() if r["resourceType"] == "PlanDefinition"]
    assert len(plans) == len(knowledge.services)
    hooks = {a["trigger"][0]["name"] for p in plans for a in p["action"]}
    assert hooks <= {s.spec.hook for s in knowledge.services.values()}


def _extension_urls(value: Any) -> set[str]:
    if isinstance(value, dict):
        found: set[str] = set()
        for key, item in value.items():
            if key == "extension":
                found |= {e["url"] for e in item}
            found |= _extension_urls(item)
        return found
    if isinstance(value, list):
        return set().union(*(_extension_urls(v) for v in value)) if value else set()
    return set()


def test_every_extension_used_has_its_structure_definition(
    exported: dict[str, dict[str, Any]],
) -> None:
    definitions = {
        r["url"]: r for r in exported.values() if r["resourceType"] == "StructureDefinition"
    }
    used = set().union(*(_extension_urls(r) for r in exported.values()))
    assert used
    assert used <= set(definitions)
    for url, definition in definitions.items():
        assert definition["type"] == "Extension"
        fixed = [e for e in definition["differential"]["element"] if e["path"] == "Extension.url"]
        assert fixed[0]["fixedUri"] == url
        assert definition["fhirVersion"] == "4.0.1"


def test_each_sub_action_points_at_an_activity_definition_of_its_suggestion(
    exported: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    knowledge = _tree(tmp_path).load()
    activities = {
        r["url"]: r for r in exported.values() if r["resourceType"] == "ActivityDefinition"
    }
    sub_actions = [
        sub
        for resource in exported.values()
        if resource["resourceType"] == "PlanDefinition"
        for action in resource["action"]
        for sub in action.get("action", [])
    ]
    assert sub_actions
    for sub in sub_actions:
        activity = activities[sub["definitionCanonical"]]
        rule_id, suggestion_id = sub["id"].split(".", 1)
        suggestion = next(s for s in knowledge.rules[rule_id].suggestions if s.id == suggestion_id)
        assert activity["kind"] == suggestion.resource["resourceType"]
        assert activity["intent"] == "proposal"
        assert activity["title"] == suggestion.label
        assert len(activity["id"]) <= 64


def test_the_repository_exports_short_ids_for_long_suggestion_names(
    knowledge: Knowledge,
) -> None:
    exported = build_fhir_export(knowledge, base_url=BASE)
    ids = [r["id"] for r in exported.values() if r["resourceType"] == "ActivityDefinition"]
    assert ids
    assert all(len(i) <= 64 for i in ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    "base",
    ["http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]/", "http://127.1.2.3"],
)
def test_a_loopback_canonical_base_is_refused_unless_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], base: str
) -> None:
    out = tmp_path / "out"
    assert main(["knowledge", "export", "--canonical-base", base, str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "names this machine" in err
    assert not out.exists()
    assert (
        main(["knowledge", "export", "--canonical-base", base, "--allow-loopback", str(out)]) == 0
    )
    assert (out / "Bundle-knowledge.json").exists()


def test_the_default_canonical_base_is_the_public_base_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CDS_PUBLIC_BASE_URL", BASE)
    assert main(["knowledge", "export", str(tmp_path)]) == 0
    assert f"canonical URLs under {BASE}/fhir/" in capsys.readouterr().out
    monkeypatch.setenv("CDS_PUBLIC_BASE_URL", "ftp://example.org")
    assert main(["knowledge", "export", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: CDS_PUBLIC_BASE_URL='ftp://example.org' is not valid")
