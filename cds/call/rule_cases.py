"""Run the cases kept beside each rule (``knowledge/rules/<id>.cases.yaml``).

A case runs its rule alone, through the same call path as a real request (prefetch, record,
engine, cards), at a fixed ``now`` so results never depend on the day the test runs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from cds.call.request_builder import request_from_resources
from cds.call.service_call import run_offline
from cds.errors import RequestError
from cds.kb.loader import Knowledge, Service
from cds.kb.prefetch_plan import plan_prefetch
from cds.kb.schemas import Case, Rule, ServiceSpec
from cds.settings import Settings

__all__ = ["CASE_NOW", "CaseResult", "case_resources", "run_case"]

CASE_NOW = date(2026, 6, 1)
DEFAULT_PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "case-patient",
    "gender": "female",
    "birthDate": "1961-04-02",
}


@dataclass(frozen=True)
class CaseResult:
    rule_id: str
    case: str
    passed: bool
    status: int
    fired: bool
    indicator: str | None
    message: str


def case_resources(knowledge: Knowledge, case: Case) -> list[dict[str, Any]]:
    resources = [copy.deepcopy(knowledge.fixtures[name]) for name in case.fixtures]
    resources += [copy.deepcopy(r) for r in case.resources]
    if not any(r.get("resourceType") == "Patient" for r in resources):
        resources.insert(0, dict(DEFAULT_PATIENT))
    return resources


def _single_rule_service(knowledge: Knowledge, rule: Rule, hook: str) -> Service:
    spec = ServiceSpec(
        id=f"case-{rule.id}", hook=hook, title=rule.title, description=rule.title, rules=(rule.id,)
    )
    plan = plan_prefetch(hook, [rule], knowledge.definitions, knowledge.valuesets)
    return Service(spec=spec, rules=(rule,), prefetch=plan)


def run_case(
    knowledge: Knowledge, rule: Rule, case: Case, settings: Settings | None = None
) -> CaseResult:
    hook = case.hook or rule.hooks[0]
    service = _single_rule_service(knowledge, rule, hook)
    body = request_from_resources(
        case_resources(knowledge, case),
        service.prefetch,
        hook=hook,
        hook_instance=f"case-{rule.id}-{case.name}",
        draft_orders=case.draft_orders,
        selections=case.selections,
        null_keys=case.null_prefetch,
        omit_keys=case.omit_prefetch,
    )
    now = datetime.combine(case.now or CASE_NOW, datetime.min.time(), tzinfo=UTC)
    settings = settings or Settings(require_jwt=False)
    status, fired, indicator, evidence_ids = 200, False, None, set()
    try:
        result = run_offline(service, body, knowledge=knowledge, settings=settings, now=now)
    except RequestError as exc:
        status = exc.status
    else:
        if result.fired:
            fired = True
            indicator = result.response.cards[0].indicator
            evidence_ids = {e.resource_id for e in result.fired[0].evidence}
    expect = case.expect
    problems = []
    if status != expect.status:
        problems.append(f"status {status}, expected {expect.status}")
    if expect.fires is not None and fired != expect.fires:
        problems.append(f"rule {'fired' if fired else 'did not fire'}, expected the opposite")
    if expect.indicator is not None and fired and indicator != expect.indicator:
        problems.append(f"indicator {indicator}, expected {expect.indicator}")
    missing = set(expect.fact_ids) - evidence_ids
    if fired and missing:
        problems.append(f"explanation does not cite {sorted(missing)}")
    return CaseResult(
        rule_id=rule.id,
        case=case.name,
        passed=not problems,
        status=status,
        fired=fired,
        indicator=indicator,
        message="; ".join(problems) or "ok",
    )
