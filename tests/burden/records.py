"""Small records for the alert-burden tests: one patient with invasive breast cancer since 2019,
seen on 2026-06-01, plus findings built from the first code of a named value set."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from cds.call.request_builder import request_from_resources
from cds.call.rule_cases import DEFAULT_PATIENT
from cds.call.service_call import CallResult, run_offline
from cds.kb.loader import Knowledge
from cds.settings import Settings
from tests import fhir_resources
from tests.fhir_resources import quantity

NOW = datetime(2026, 6, 1, tzinfo=UTC)
_PATIENT = str(DEFAULT_PATIENT["id"])


def _coding(knowledge: Knowledge, valueset: str) -> dict[str, str]:
    code = knowledge.valueset_files[valueset].codes[0]
    return {"system": code.system, "code": code.code, "display": code.display}


def base(knowledge: Knowledge) -> list[dict[str, Any]]:
    return [
        copy.deepcopy(DEFAULT_PATIENT),
        copy.deepcopy(knowledge.fixtures["invasive-breast-cancer-2019"]),
    ]


def condition(knowledge: Knowledge, rid: str, valueset: str, onset: str) -> dict[str, Any]:
    code = _coding(knowledge, valueset)
    return fhir_resources.condition(rid, code, patient=_PATIENT, onset=onset, active=True)


def observation(
    knowledge: Knowledge, rid: str, valueset: str, when: str, value: float, unit: str
) -> dict[str, Any]:
    code = _coding(knowledge, valueset)
    measured = quantity(value, unit)
    return fhir_resources.observation(rid, code, patient=_PATIENT, date=when, value=measured)


def call(
    knowledge: Knowledge,
    resources: list[dict[str, Any]],
    *,
    hook: str = "patient-view",
    settings: Settings | None = None,
    now: datetime = NOW,
    hook_instance: str = "burden-test",
) -> CallResult:
    """Every service of ``hook`` on the record; one result (one service per hook here)."""
    (service,) = knowledge.services_for(hook)
    body = request_from_resources(
        resources, service.prefetch, hook=hook, hook_instance=hook_instance
    )
    return run_offline(service, body, knowledge=knowledge, now=now, settings=settings)
