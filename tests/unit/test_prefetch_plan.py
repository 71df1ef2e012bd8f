"""Prefetch templates derived from the rules: searches that carry codes ask only for those."""

from __future__ import annotations

from cds.call.prefetch import search_parameters
from cds.kb.code_systems import ICD10CM, LOINC
from cds.kb.loader import Knowledge
from cds.kb.prefetch_plan import PrefetchPlan, plan_prefetch
from cds.kb.terminology import CompiledValueSet
from tests.unit.knowledge_tree import make_rule


def _template(knowledge: Knowledge, service_id: str, key: str) -> str:
    return next(k.template for k in knowledge.services[service_id].prefetch.keys if k.name == key)


def test_diagnostic_reports_are_asked_for_by_the_codes_the_rules_read(
    knowledge: Knowledge,
) -> None:
    """A chart's reports carry their notes; the mammogram rule needs only mammography reports."""
    template = _template(knowledge, "breast-cancer-followup-patient-view", "diagnosticReports")
    path, pairs = search_parameters(template)
    assert path == "DiagnosticReport"
    params = dict(pairs)
    assert params["patient"] == "{{context.patientId}}"
    codes = set(params["code"].split(","))
    mammography = knowledge.valuesets["mammography"]
    # the only value set imaging facts read: exactly its codes, nothing else
    assert codes == {f"{system}|{code}" for system, code in mammography.codes}


def test_imaging_studies_are_asked_for_the_elements_read_and_no_code(knowledge: Knowledge) -> None:
    """A study has no code search; its series and instances (most of its bytes) are not read."""
    template = _template(knowledge, "breast-cancer-followup-patient-view", "imagingStudies")
    assert template == (
        "ImagingStudy?patient={{context.patientId}}"
        "&_elements=modality,procedureCode,started,status,subject"
    )


def test_a_value_set_with_code_families_asks_for_its_kind_whole() -> None:
    """A family (every code under a prefix) has no token search: narrowing by the listed codes
    would leave the family's other members on the server."""
    pain = CompiledValueSet("pain", "pain", codes=frozenset({(LOINC, "72514-3")}))
    family = CompiledValueSet(
        "family",
        "family",
        codes=frozenset({(LOINC, "2000-8")}),
        prefixes=frozenset({(ICD10CM, "R52")}),
    )
    narrow = make_rule([{"observation": {"valueset": "pain"}}])
    wide = make_rule([{"observation": {"valueset": "family"}}], rule_id="wide")
    valuesets = {"pain": pain, "family": family}
    only_codes = plan_prefetch("patient-view", [narrow], {}, valuesets)
    assert _key(only_codes, "observations") == (
        "Observation?patient={{context.patientId}}&code=http://loinc.org|72514-3"
    )
    both = plan_prefetch("patient-view", [narrow, wide], {}, valuesets)
    assert _key(both, "observations") == "Observation?patient={{context.patientId}}"


def _key(plan: PrefetchPlan, name: str) -> str:
    return next(k.template for k in plan.keys if k.name == name)
