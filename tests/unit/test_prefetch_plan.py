"""Prefetch templates derived from the rules: searches that carry codes ask only for those."""

from __future__ import annotations

from cds.call.prefetch import search_parameters
from cds.kb.loader import Knowledge


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


def test_imaging_studies_have_no_code_search_and_are_asked_for_whole(knowledge: Knowledge) -> None:
    template = _template(knowledge, "breast-cancer-followup-patient-view", "imagingStudies")
    assert template == "ImagingStudy?patient={{context.patientId}}"
