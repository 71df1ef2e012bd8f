"""Every case of every rule (``knowledge/rules/<id>.cases.yaml``), one test each: ``<rule>/<case>``.

Each case runs its rule alone through the real call path (prefetch, record, engine, cards) at a
fixed date; see :mod:`cds.call.rule_cases`.
"""

from __future__ import annotations

from typing import Any

import pytest

from cds.call.rule_cases import run_case
from cds.errors import KnowledgeError
from cds.kb.loader import Knowledge
from tests.conftest import shipped_knowledge


def _load() -> Knowledge | KnowledgeError:
    try:
        return shipped_knowledge()
    except KnowledgeError as exc:
        return exc


_LOADED = _load()


def _params() -> list[Any]:
    if isinstance(_LOADED, KnowledgeError):
        return [pytest.param(None, None, id="knowledge-invalid")]
    return [
        pytest.param(rule_id, case.name, id=f"{rule_id}/{case.name}")
        for rule_id in sorted(_LOADED.rules)
        for case in _LOADED.cases.get(rule_id, ())
    ]


@pytest.mark.parametrize(("rule_id", "case_name"), _params())
def test_case(rule_id: str | None, case_name: str | None) -> None:
    if isinstance(_LOADED, KnowledgeError):
        pytest.fail(str(_LOADED))
    assert rule_id is not None
    rule = _LOADED.rules[rule_id]
    case = next(c for c in _LOADED.cases[rule_id] if c.name == case_name)
    result = run_case(_LOADED, rule, case)
    assert result.passed, f"{rule_id}/{case_name}: {result.message} ({case.description})"


def test_there_are_cases_to_run() -> None:
    assert not isinstance(_LOADED, KnowledgeError), str(_LOADED)
    assert sum(len(cases) for cases in _LOADED.cases.values()) >= 5
