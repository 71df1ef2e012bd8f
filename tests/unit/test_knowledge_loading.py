"""Load-time validation: every problem names its file and field, and all are reported at once."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from cds.cli import main
from cds.errors import KnowledgeError
from cds.kb import logic, schemas
from cds.kb.loader import Knowledge, load_knowledge
from tests.unit.knowledge_tree import TEMPLATE, Tree, rule_data

RULE_FILE = "knowledge/rules/test-rule.yaml"


def _problems(tree: Tree) -> list[str]:
    with pytest.raises(KnowledgeError) as caught:
        tree.load()
    return caught.value.problems


def _expect(tree: Tree, file: str, *fragments: str) -> None:
    problems = _problems(tree)
    matching = [p for p in problems if p.startswith(f"{file}: ") and all(f in p for f in fragments)]
    assert matching, f"no problem in {file} mentioning {fragments}; got {problems}"


def test_every_knowledge_file_model_has_the_one_strict_base() -> None:
    """Unknown keys refused, values frozen: one base class, so the two modules cannot drift."""
    models = [
        model
        for module in (logic, schemas)
        for _, model in inspect.getmembers(module, inspect.isclass)
        if issubclass(model, BaseModel) and model.__module__ == module.__name__
    ]
    assert len(models) > 20
    for model in models:
        assert logic._Schema in model.__mro__, model.__name__
    assert logic._Schema.model_config == {
        "extra": "forbid",
        "populate_by_name": True,
        "frozen": True,
    }


def test_the_base_tree_is_valid(tmp_path: Path) -> None:
    knowledge = Tree(tmp_path).load()
    assert isinstance(knowledge, Knowledge)
    assert set(knowledge.rules) == {"test-rule"}
    assert set(knowledge.services) == {"test-service"}


def test_the_repository_knowledge_is_valid(knowledge: Knowledge) -> None:
    assert knowledge.rules
    assert knowledge.services


# --- unknown fields ---------------------------------------------------------------------------


def _logic(tree: Tree) -> dict[str, Any]:
    logic: dict[str, Any] = tree.rules["test-rule"]["logic"]
    return logic


UNKNOWN_FIELDS: dict[str, tuple[Callable[[Tree], None], str, tuple[str, ...]]] = {
    "rule top level": (
        lambda t: t.rules["test-rule"].update(colour="red"),
        RULE_FILE,
        ("colour", "Extra inputs are not permitted"),
    ),
    "rule logic node": (
        lambda t: _logic(t)["inclusion"][1]["condition"].update(withn="P90D"),
        RULE_FILE,
        ("logic.inclusion.1.condition.withn",),
    ),
    "rule card": (
        lambda t: t.rules["test-rule"]["card"].update(colour="red"),
        RULE_FILE,
        ("card.colour",),
    ),
    "value set code": (
        lambda t: t.valuesets["bone-pain"]["codes"][0].update(version="2024"),
        "knowledge/valuesets/bone-pain.yaml",
        ("codes.0.version",),
    ),
    "template": (
        lambda t: t.templates["test-card"].update(title="x"),
        "cards/templates/test-card.yaml",
        ("title",),
    ),
    "service": (
        lambda t: t.services[0].update(prefetch={}),
        "knowledge/services.yaml",
        ("services.0.prefetch",),
    ),
    "definition": (
        lambda t: t.definitions["invasive-breast-cancer"].update(note="x"),
        "knowledge/definitions.yaml",
        ("note",),
    ),
}


@pytest.mark.parametrize("where", UNKNOWN_FIELDS)
def test_unknown_field(tmp_path: Path, where: str) -> None:
    change, file, fragments = UNKNOWN_FIELDS[where]
    tree = Tree(tmp_path)
    change(tree)
    _expect(tree, file, *fragments)


def test_a_logic_node_with_two_kinds_is_refused(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    _logic(tree)["inclusion"][0] = {"ref": "invasive-breast-cancer", "patient": {"sex": ["male"]}}
    _expect(tree, RULE_FILE, "logic.inclusion.0", "exactly one of")


# --- unknown references -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "node"),
    [
        ("logic.inclusion.1", {"condition": {"valueset": "bone-pian"}}),
        (
            "logic.inclusion.1",
            {"observation": {"valueset": "her2-result", "value": {"valueset": "bone-pian"}}},
        ),
        (
            "logic.inclusion.1",
            {"observation": {"valueset": "blood-pressure", "component": {"valueset": "bone-pian"}}},
        ),
        ("logic.inclusion.1", {"not": {"any": [{"condition": {"valueset": "bone-pian"}}]}}),
        (
            "logic.inclusion.1",
            {
                "observation": {
                    "valueset": "blood-pressure",
                    "components": [{"valueset": "systolic"}, {"valueset": "bone-pian"}],
                }
            },
        ),
    ],
)
def test_unknown_value_set(tmp_path: Path, path: str, node: dict[str, Any]) -> None:
    tree = Tree(tmp_path)
    _logic(tree)["inclusion"][1] = node
    _expect(tree, RULE_FILE, path, "unknown value set 'bone-pian'")


def test_unknown_value_set_in_a_definition(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.definitions["known-bone-metastasis"]["logic"] = {"condition": {"valueset": "nope"}}
    _expect(tree, "knowledge/definitions.yaml", "known-bone-metastasis.logic", "unknown value set")


def test_unknown_included_value_set_and_include_cycle(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.valuesets["bone-symptoms"]["include"] = ["bone-pain", "nope"]
    tree.valuesets["bone-pain"]["include"] = ["bone-symptoms"]
    problems = _problems(tree)
    assert any(
        p.startswith("knowledge/valuesets/bone-symptoms.yaml: include: unknown value set 'nope'")
        for p in problems
    ), problems
    assert any("include: cycle through" in p for p in problems), problems


def test_unknown_card_template(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.rules["test-rule"]["card"]["template"] = "no-such-card"
    _expect(tree, RULE_FILE, "card.template", "unknown card template 'no-such-card'")


def test_unknown_education_page_and_override_reason(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.rules["test-rule"]["card"]["education"] = ["no-such-page"]
    tree.rules["test-rule"]["override_reasons"] = ["because"]
    _expect(tree, RULE_FILE, "card.education", "no-such-page")
    _expect(tree, RULE_FILE, "override_reasons", "because")


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"code": "bone scan"}, ("suggestions.0.resource", "code")),
        ({"status": "active"}, ("suggestions.0.resource", "status must be 'draft'")),
        ({"intent": "order"}, ("suggestions.0.resource", "intent must be 'proposal'")),
        ({"authoredOn": "yesterday"}, ("suggestions.0.resource", "authoredOn")),
        ({"subject": {"reference": "Patient/x"}}, ("suggestions.0.resource", "subject")),
        ({"resourceType": "Patient"}, ("suggestions.0.resource", "resourceType")),
        ({"bodySite": [{"coding": [{"system": 5}]}]}, ("suggestions.0.resource", "bodySite")),
    ],
)
def test_invalid_fhir_in_a_suggestion(
    tmp_path: Path, change: dict[str, Any], fragments: tuple[str, ...]
) -> None:
    tree = Tree(tmp_path)
    tree.rules["test-rule"]["suggestions"][0]["resource"].update(change)
    _expect(tree, RULE_FILE, *fragments)


def test_education_placeholder_without_its_end_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.rules["test-rule"]["suggestions"][0]["resource"]["note"] = [
        {"text": "See {{education:when-to-call-your-doctor"}
    ]
    _expect(tree, RULE_FILE, "suggestions.0.resource", "needs its '}}'")


def test_education_placeholder_naming_an_unknown_page(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.rules["test-rule"]["suggestions"][0]["resource"]["note"] = [
        {"text": "See {{education:no-such-page}}"}
    ]
    _expect(tree, RULE_FILE, "suggestions.0.resource", "unknown education page 'no-such-page'")


def test_an_education_page_problem_names_the_cards_folder_it_was_read_from(
    tmp_path: Path,
) -> None:
    tree = Tree(tmp_path)
    tree.education["bone-health"] = (
        "---\ntitle: Bone health\nsummary: About bones.\nsections: [Bones]\n---\n# Bones\n"
    )
    tree.write()
    elsewhere = tmp_path / "site-content"
    (tree.cards_dir).rename(elsewhere)
    with pytest.raises(KnowledgeError) as caught:
        load_knowledge(tree.knowledge_dir, elsewhere)
    assert any(
        str(elsewhere / "education" / "bone-health.md") in p or "site-content/education" in p
        for p in caught.value.problems
    ), caught.value.problems


# --- duplicates -------------------------------------------------------------------------------


def test_duplicate_rule_id(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.rules["test-rule-copy"] = rule_data("test-rule")
    problems = _problems(tree)
    assert any("duplicate rule id 'test-rule'" in p for p in problems), problems
    assert any(
        p.startswith("knowledge/rules/test-rule-copy.yaml: id:") and "file name" in p
        for p in problems
    ), problems


def test_duplicate_value_set_and_template_ids(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.valuesets["zz-copy"] = {**tree.valuesets["bone-pain"]}
    tree.raw["knowledge/valuesets/zz-copy.yaml"] = (
        "id: bone-pain\ntitle: x\ndescription: x\n"
        "codes: [{system: snomed, code: '1', display: x, verified: U}]\n"
    )
    tree.raw["cards/templates/zz-copy.yaml"] = (
        "id: test-card\naudience: clinician\nsummary: A copy of the card\ndetail: A copy again.\n"
    )
    problems = _problems(tree)
    assert any(
        p.startswith("knowledge/valuesets/zz-copy.yaml") and "duplicate id 'bone-pain'" in p
        for p in problems
    ), problems
    assert any(
        p.startswith("cards/templates/zz-copy.yaml") and "duplicate id 'test-card'" in p
        for p in problems
    ), problems


def test_duplicate_suggestion_service_case_and_yaml_keys(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    suggestions = tree.rules["test-rule"]["suggestions"]
    suggestions.append(copy.deepcopy(suggestions[0]))
    tree.services.append(copy.deepcopy(tree.services[0]))
    case = {
        "name": "in-fires",
        "description": "fires",
        "expect": {"fires": True},
    }
    tree.cases["test-rule"] = [case, case]
    tree.raw["knowledge/valuesets/twice.yaml"] = (
        "id: twice\ntitle: x\ndescription: x\ntitle: y\n"
        "codes: [{system: snomed, code: '1', display: x, verified: U}]\n"
    )
    problems = _problems(tree)
    for expected in (
        ("knowledge/rules/test-rule.yaml: suggestions.1.id: duplicate 'bone-scan'"),
        ("knowledge/services.yaml: services.1.id: duplicate service id 'test-service'"),
        ("knowledge/rules/test-rule.cases.yaml: 1.name: duplicate case name 'in-fires'"),
        ("knowledge/valuesets/twice.yaml: cannot read YAML: duplicate key 'title'"),
    ):
        assert any(p.startswith(expected) for p in problems), (expected, problems)


# --- text limits and the source document ------------------------------------------------------


def test_card_summary_over_139_characters(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.templates["test-card"]["summary"] = "x" * 140
    _expect(tree, "cards/templates/test-card.yaml", "summary", "at most 139 characters")


def test_card_summary_of_139_characters_is_accepted(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.templates["test-card"]["summary"] = "x" * 139
    assert tree.load().templates["test-card"].summary == "x" * 139


def test_unknown_section_heading(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.rules["test-rule"]["source"]["section"] = "When To Call The Doctor"
    _expect(tree, RULE_FILE, "source.section", "not a heading of the source document")


def test_unknown_source_document(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.rules["test-rule"]["source"]["document"] = "another-leaflet"
    _expect(tree, RULE_FILE, "source.document", "another-leaflet")


def test_education_page_with_an_unknown_section(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.education["bone-health"] = (
        "---\ntitle: Bone health\nsummary: About bones.\nsections: [Bones]\n---\n# Bones\n"
    )
    _expect(tree, "cards/education/bone-health.md", "sections", "'Bones'")


def test_education_page_without_front_matter(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.education["bare"] = "# Just a page\n"
    _expect(tree, "cards/education/bare.md", "front matter")


# --- definitions ------------------------------------------------------------------------------


def test_unknown_definition(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    _logic(tree)["inclusion"][0] = {"ref": "invasive-breast-cancr"}
    _expect(tree, RULE_FILE, "logic.inclusion.0", "unknown definition 'invasive-breast-cancr'")


def test_unknown_anchor_definition(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    _logic(tree)["inclusion"][1]["condition"]["after"] = {"first": "diagnosis"}
    _expect(tree, RULE_FILE, "logic.inclusion.1", "anchor names unknown definition 'diagnosis'")


def test_definition_cycle_through_refs(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.definitions["a"] = {"description": "a", "logic": {"any": [{"ref": "b"}]}}
    tree.definitions["b"] = {"description": "b", "logic": {"not": {"ref": "a"}}}
    _expect(tree, "knowledge/definitions.yaml", "a.logic", "definition cycle a -> b -> a")


def test_definition_cycle_through_an_anchor(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.definitions["late-pain"] = {
        "description": "pain after itself",
        "logic": {"condition": {"valueset": "bone-pain", "after": {"first": "late-pain"}}},
    }
    _expect(tree, "knowledge/definitions.yaml", "late-pain", "cycle late-pain -> late-pain")


# --- the vocabulary's own checks --------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "fragments"),
    [
        ({"valueset": "bone-pain", "within": "90 days"}, ("within", "ISO 8601")),
        ({"valueset": "bone-pain", "status": "resolved"}, ("status",)),
        ({"valueset": "bone-pain", "value": {"gt": 1}}, ("observations only",)),
        ({"valueset": "bone-pain", "after": {"first": "x", "last": "y"}}, ("exactly one",)),
        (
            {"valueset": "bone-pain", "after": {"first": "invasive-breast-cancer", "offset": "1M"}},
            ("offset", "ISO 8601"),
        ),
        ({"valueset": "bone-pain", "count": {"at_least": 0}}, ("count.at_least",)),
        ({"within": "P1D"}, ("needs a valueset",)),
    ],
)
def test_bad_condition_query(
    tmp_path: Path, query: dict[str, Any], fragments: tuple[str, ...]
) -> None:
    tree = Tree(tmp_path)
    _logic(tree)["inclusion"][1] = {"condition": query}
    _expect(tree, RULE_FILE, "logic.inclusion.1", *fragments)


def test_status_only_on_conditions_and_medications(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    _logic(tree)["inclusion"][1] = {"observation": {"valueset": "calcium", "status": "active"}}
    _expect(tree, RULE_FILE, "logic.inclusion.1.observation.status", "only condition")


def test_value_tests_are_coded_or_numeric(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    value = {"valueset": "negative", "gt": 1}
    _logic(tree)["inclusion"][1] = {"observation": {"valueset": "calcium", "value": value}}
    _expect(tree, RULE_FILE, "logic.inclusion.1.observation.value", "not both")


@pytest.mark.parametrize(
    ("field", "value", "fragments"),
    [
        ("hooks", ["patient-open"], ("hooks", "unknown hooks")),
        ("version", "1.0", ("version",)),
        ("status", "published", ("status",)),
        ("id", "Test_Rule", ("id", "kebab-case")),
        ("rationale", "short", ("rationale",)),
    ],
)
def test_bad_rule_fields(
    tmp_path: Path, field: str, value: Any, fragments: tuple[str, ...]
) -> None:
    tree = Tree(tmp_path)
    tree.rules["test-rule"][field] = value
    _expect(tree, RULE_FILE, *fragments)


def test_value_set_system_and_code(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.valuesets["bone-pain"]["codes"][0]["system"] = "snomedct"
    tree.valuesets["bone-pain"]["codes"][1]["code"] = "  "
    file = "knowledge/valuesets/bone-pain.yaml"
    _expect(tree, file, "codes.0.system", "'snomedct'")
    _expect(tree, file, "codes.1.code", "unusable code")


def test_value_set_systems_are_canonical(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.valuesets["bone-pain"]["codes"][0]["system"] = "urn:oid:2.16.840.1.113883.6.96"
    compiled = tree.load().valuesets["bone-pain"]
    assert ("http://snomed.info/sct", "12584003") in compiled.codes


# --- services and cases -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"hook": "patient-open"}, ("services.0.hook", "unknown hook")),
        ({"rules": ["no-such-rule"]}, ("services.0.rules", "unknown rule 'no-such-rule'")),
        ({"hook": "order-sign"}, ("services.0.rules", "does not run on order-sign")),
    ],
)
def test_bad_services(tmp_path: Path, change: dict[str, Any], fragments: tuple[str, ...]) -> None:
    tree = Tree(tmp_path)
    tree.services[0].update(change)
    _expect(tree, "knowledge/services.yaml", *fragments)


CASES_FILE = "knowledge/rules/test-rule.cases.yaml"


@pytest.mark.parametrize(
    ("case", "fragments"),
    [
        ({"name": "fires"}, ("name", "case names start with")),
        ({"fixtures": ["nope"]}, ("fixtures", "unknown fixture 'nope'")),
        ({"hook": "order-sign"}, ("hook", "does not run on 'order-sign'")),
        ({"null_prefetch": ["observations"]}, ("null_prefetch", "'observations'")),
        ({"omit_prefetch": ["condition"]}, ("omit_prefetch", "'condition'")),
        ({"expect": {"indicator": "warning"}}, ("expect", "whether the rule fires")),
    ],
)
def test_bad_cases(tmp_path: Path, case: dict[str, Any], fragments: tuple[str, ...]) -> None:
    tree = Tree(tmp_path)
    base = {"name": "in-fires", "description": "A case.", "expect": {"fires": True}}
    tree.cases["test-rule"] = [{**base, **case}]
    _expect(tree, CASES_FILE, *fragments)


def test_cases_without_a_rule(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.cases["ghost-rule"] = [{"name": "in-x", "description": "x", "expect": {"fires": True}}]
    _expect(tree, "knowledge/rules/ghost-rule.cases.yaml", "no rule with this id")


# --- reporting --------------------------------------------------------------------------------


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.rules["test-rule"]["card"]["template"] = "nope"
    tree.templates["test-card"] = {**TEMPLATE, "summary": "x" * 200}
    tree.valuesets["bone-pain"]["codes"][0]["verified"] = "maybe"
    problems = _problems(tree)
    files = {p.split(": ", 1)[0] for p in problems}
    assert {
        RULE_FILE,
        "cards/templates/test-card.yaml",
        "knowledge/valuesets/bone-pain.yaml",
    } <= files


def test_unreadable_yaml_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.raw["knowledge/valuesets/broken.yaml"] = "id: [unclosed\n"
    _expect(tree, "knowledge/valuesets/broken.yaml", "cannot read YAML")


def test_knowledge_check_refuses_bad_knowledge_with_file_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = Tree(tmp_path)
    tree.rules["test-rule"]["card"]["template"] = "nope"
    tree.write()
    monkeypatch.setenv("CDS_KNOWLEDGE_DIR", str(tree.knowledge_dir))
    monkeypatch.setenv("CDS_CARDS_DIR", str(tree.cards_dir))
    assert main(["knowledge", "check"]) == 2
    err = capsys.readouterr().err
    assert f"{RULE_FILE}: card.template: unknown card template 'nope'" in err


def test_knowledge_check_prints_the_rule_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = Tree(tmp_path)
    tree.cases["test-rule"] = [
        {
            "name": "in-fires",
            "description": "Bone pain after breast cancer.",
            "resources": [
                {
                    "resourceType": "Condition",
                    "id": "bc",
                    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "254837009"}]},
                    "onsetDateTime": "2019-01-01",
                },
                {
                    "resourceType": "Condition",
                    "id": "pain",
                    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "12584003"}]},
                    "onsetDateTime": "2026-05-01",
                },
            ],
            "expect": {"fires": True, "indicator": "warning", "fact_ids": ["bc", "pain"]},
        },
        {"name": "out-nothing", "description": "No data.", "expect": {"fires": False}},
    ]
    tree.write()
    monkeypatch.setenv("CDS_KNOWLEDGE_DIR", str(tree.knowledge_dir))
    monkeypatch.setenv("CDS_CARDS_DIR", str(tree.cards_dir))
    assert main(["knowledge", "check"]) == 0
    out = capsys.readouterr().out
    assert "test-rule" in out
    assert "2/2" in out
    assert "unreviewed" in out


def test_education_page_marking_an_unknown_heading_beyond_the_source(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.education["fever"] = (
        "---\ntitle: Fever\nsummary: About fever.\nsections: [Self-Care]\n"
        "beyond_source: {'Call now': 'ASCO/IDSA guideline, 2018'}\n---\n## When to call\n\nCall.\n"
    )
    _expect(tree, "cards/education/fever.md", "beyond_source", "'Call now'")


def test_education_page_marking_its_own_heading_beyond_the_source_loads(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.education["fever"] = (
        "---\ntitle: Fever\nsummary: About fever.\nsections: [Self-Care]\n"
        "beyond_source: {'Call now': 'ASCO/IDSA guideline, 2018'}\n---\n## Call now\n\nCall.\n"
    )
    assert tree.load().education["fever"].beyond_source == {"Call now": "ASCO/IDSA guideline, 2018"}
