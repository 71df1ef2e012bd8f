"""What the knowledge pages show: the rule table and everything about one rule."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cds.call.rule_cases import CaseResult
from cds.kb.code_systems import SYSTEM_NAMES
from cds.kb.loader import Knowledge
from cds.kb.review import review_state
from cds.kb.schemas import Case, Rule, ValueSetFile
from cds.web.logic_words import logic_phrases, valuesets_of_rule

__all__ = [
    "CaseRow",
    "RuleRow",
    "ValueSetView",
    "rule_detail",
    "rule_rows",
]


@dataclass(frozen=True)
class RuleRow:
    id: str
    title: str
    version: str
    status: str
    hooks: tuple[str, ...]
    indicator: str
    section: str
    beyond_source: bool
    review_state: str
    services: tuple[str, ...]
    cases: int


@dataclass(frozen=True)
class CodeRow:
    system: str
    code: str
    display: str
    verified: str
    note: str | None = None

    @property
    def system_name(self) -> str:
        return SYSTEM_NAMES.get(self.system, "other")


@dataclass(frozen=True)
class ValueSetView:
    id: str
    title: str
    description: str
    codes: tuple[CodeRow, ...]
    families: tuple[CodeRow, ...]
    includes: tuple[str, ...]


@dataclass(frozen=True)
class CaseRow:
    name: str
    description: str
    expectation: str
    result: CaseResult | None


def _services_of(knowledge: Knowledge, rule_id: str) -> tuple[str, ...]:
    return tuple(
        service.spec.id
        for service in knowledge.services.values()
        if any(rule.id == rule_id for rule in service.rules)
    )


def rule_rows(knowledge: Knowledge) -> list[RuleRow]:
    """Every rule, active first, then by id."""
    order = {"active": 0, "draft": 1, "retired": 2}
    return [
        RuleRow(
            id=rule.id,
            title=rule.title,
            version=rule.version,
            status=rule.status,
            hooks=rule.hooks,
            indicator=rule.card.indicator,
            section=rule.source.section,
            beyond_source=rule.source.beyond_source,
            review_state=review_state(knowledge, rule),
            services=_services_of(knowledge, rule.id),
            cases=len(knowledge.cases.get(rule.id, ())),
        )
        for rule in sorted(knowledge.rules.values(), key=lambda r: (order[r.status], r.id))
    ]


def _valueset_view(file: ValueSetFile) -> ValueSetView:
    return ValueSetView(
        id=file.id,
        title=file.title,
        description=file.description,
        codes=(
            *(CodeRow(c.system, c.code, c.display, c.verified, c.note) for c in file.codes),
            *(
                CodeRow(c.system, c.code, f"{c.display} and its descendants", c.verified, c.note)
                for c in file.descendants_of
            ),
        ),
        families=tuple(
            CodeRow(f.system_uri, f.prefix + "*", f.display, f.verified) for f in file.families
        ),
        includes=file.include,
    )


def _expectation(case: Case) -> str:
    expect = case.expect
    if expect.status != 200:
        return f"answer HTTP {expect.status}"
    text = "fires" if expect.fires else "does not fire"
    if expect.fires and expect.indicator:
        text += f" ({expect.indicator})"
    if expect.fact_ids:
        text += "; explanation cites " + ", ".join(expect.fact_ids)
    return text


def _relative(path: Path | None, root: Path) -> str | None:
    if path is None:
        return None
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return path.name


def rule_detail(
    knowledge: Knowledge,
    rule: Rule,
    case_results: tuple[CaseResult, ...],
    *,
    repo_root: Path,
) -> dict[str, Any]:
    """The template context of ``/knowledge/{rule_id}``."""
    inclusion, exclusion = logic_phrases(knowledge, rule)
    template = knowledge.templates[rule.card.template]
    results = {result.case: result for result in case_results}
    cases = [
        CaseRow(case.name, case.description, _expectation(case), results.get(case.name))
        for case in knowledge.cases.get(rule.id, ())
    ]
    return {
        "rule": rule,
        "review_state": review_state(knowledge, rule),
        "inclusion": inclusion,
        "exclusion": exclusion,
        "valuesets": [
            _valueset_view(knowledge.valueset_files[vs_id])
            for vs_id in valuesets_of_rule(knowledge, rule)
            if vs_id in knowledge.valueset_files
        ],
        "card_template": template,
        "suggestions": rule.suggestions,
        "override_reasons": [
            knowledge.override_reasons[code]
            for code in rule.override_reasons
            if code in knowledge.override_reasons
        ],
        "education": [
            knowledge.education[slug] for slug in rule.card.education if slug in knowledge.education
        ],
        "services": _services_of(knowledge, rule.id),
        "cases": cases,
        "passing": sum(1 for row in cases if row.result is not None and row.result.passed),
        "rule_file": _relative(knowledge.rule_files.get(rule.id), repo_root),
        "source": knowledge.source,
    }
