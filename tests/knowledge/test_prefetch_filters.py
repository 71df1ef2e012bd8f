"""The prefetch plan's search filters never hide from a rule what it needs.

Rule cases are built the way a FHIR server would answer each key's query (codes, status,
``_include``: :mod:`cds.call.offline_search`). Each case is run once more with every key
asking for all resources of its type; a case whose outcome differs means a query leaves out
a resource its rule reads, that is, the plan is too narrow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pytest

from cds.call import rule_cases
from cds.call.prefetch import search_parameters
from cds.kb.loader import Knowledge
from cds.kb.logic import Node
from cds.kb.prefetch_plan import PrefetchKey, PrefetchPlan, plan_prefetch
from cds.kb.schemas import Rule
from cds.kb.terminology import CompiledValueSet


def _unfiltered(plan: PrefetchPlan) -> PrefetchPlan:
    """The plan with each search's filters dropped (``patient`` and ``_include`` kept)."""
    keys = []
    for key in plan.keys:
        path, params = search_parameters(key.template)
        if path == key.template:  # a read (Patient/{{...}}): nothing to widen
            keys.append(key)
            continue
        kept = [f"{name}={value}" for name, value in params if name in ("patient", "_include")]
        keys.append(dataclasses.replace(key, template=f"{path}?{'&'.join(kept)}"))
    return dataclasses.replace(plan, keys=tuple(keys))


def _outcomes(knowledge: Knowledge) -> dict[str, tuple[int, bool, str | None, str]]:
    out = {}
    for rule_id, cases in knowledge.cases.items():
        for case in cases:
            result = rule_cases.run_case(knowledge, knowledge.rules[rule_id], case)
            out[f"{rule_id}/{case.name}"] = (
                result.status,
                result.fired,
                result.indicator,
                result.message,
            )
    return out


def test_unfiltered_plan_drops_filters_only() -> None:
    plan = PrefetchPlan(
        keys=(
            PrefetchKey("o", "Observation?patient={{context.patientId}}&code=a|1", "Observation"),
            PrefetchKey("p", "Patient/{{context.patientId}}", "Patient"),
        ),
        rule_keys={},
    )
    assert _unfiltered(plan).templates() == {
        "o": "Observation?patient={{context.patientId}}",
        "p": "Patient/{{context.patientId}}",
    }


def test_no_rule_case_changes_outcome_when_the_queries_ask_for_everything(
    knowledge: Knowledge, monkeypatch: pytest.MonkeyPatch
) -> None:
    filtered = _outcomes(knowledge)
    assert filtered, "no rule cases"

    def widened(
        hook: str,
        rules: Iterable[Rule],
        definitions: dict[str, Node],
        valuesets: dict[str, CompiledValueSet],
    ) -> PrefetchPlan:
        return _unfiltered(plan_prefetch(hook, rules, definitions, valuesets))

    monkeypatch.setattr(rule_cases, "plan_prefetch", widened)
    unfiltered = _outcomes(knowledge)
    changed = {name: (filtered[name], unfiltered[name]) for name in filtered}
    changed = {name: pair for name, pair in changed.items() if pair[0] != pair[1]}
    assert changed == {}
