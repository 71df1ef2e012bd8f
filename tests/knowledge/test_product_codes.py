"""Every product of the generated RxNorm table fires its drug class's rules (or, for a rule
about a missing medicine, keeps it quiet) in a fitting patient.

The fitting patients are the rules' own cases: a case whose outcome depends on one
medication code (with an unknown code in its place the outcome flips) is a template for that
code's drug class. Each product is put in place of the template's code and the case must keep
its outcome: for an order rule under each order hook it runs on (order-select and
order-sign), for a patient-view rule as a record the patient already has. The table holds
every product of these classes the CDS Hooks Sandbox's drug list offers, so this covers the
sandbox's products too.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest

from cds.call.rule_cases import run_case
from cds.kb.code_systems import RXNORM
from cds.kb.loader import Knowledge
from cds.kb.logic import walk
from cds.kb.schemas import Case, Rule
from tests.conftest import shipped_knowledge

_ORDER_HOOKS = ("order-select", "order-sign")
_UNKNOWN = "0"  # no RxNorm concept has this code


@dataclass(frozen=True)
class Template:
    rule: Rule
    case: Case
    hook: str
    where: str  # "draft_orders" or "resources"
    index: int  # which entry holds the medication code
    classes: frozenset[str]  # value sets the original code falls in

    def with_code(self, code: str) -> Case:
        entries: list[dict[str, Any]] = copy.deepcopy(list(getattr(self.case, self.where)))
        concept = entries[self.index]["medicationCodeableConcept"]
        concept["coding"] = [{"system": RXNORM, "code": code}]
        concept.pop("text", None)
        return self.case.model_copy(update={self.where: tuple(entries), "hook": self.hook})

    @property
    def id(self) -> str:
        return f"{self.rule.id}/{self.case.name}@{self.hook}"


def _knowledge() -> Knowledge:
    return shipped_knowledge()


def _classes(knowledge: Knowledge, code: str) -> frozenset[str]:
    keys = [(RXNORM, code), *((RXNORM, i) for i in knowledge.ingredients.get(code, ()))]
    return frozenset(
        vs.id for vs in knowledge.valuesets.values() if any(k in vs.codes for k in keys)
    )


@cache
def _read_by(rule_id: str) -> frozenset[str]:
    """Every value set a rule reads, through its definitions and anchors."""
    knowledge = _knowledge()
    rule = knowledge.rules[rule_id]
    found: set[str] = set()
    for node in walk((*rule.logic.inclusion, *rule.logic.exclusion), knowledge.definitions):
        fact = node.fact()
        if fact is not None:
            found.update(fact[1].valuesets())
    return frozenset(found)


def _rxnorm_code(resource: dict[str, Any]) -> str | None:
    concept = resource.get("medicationCodeableConcept") or {}
    codes = [c.get("code") for c in concept.get("coding", ()) if c.get("system") == RXNORM]
    return codes[0] if len(codes) == 1 else None


@cache
def templates() -> tuple[Template, ...]:
    """One template per rule, hook and drug class: the first case whose outcome hangs on one
    code of that class."""
    knowledge = _knowledge()
    found: dict[tuple[str, str, frozenset[str]], Template] = {}
    for rule_id, cases in sorted(knowledge.cases.items()):
        rule = knowledge.rules[rule_id]
        for case in cases:
            if case.expect.fires is None or case.expect.status != 200:
                continue
            hooks = [h for h in _ORDER_HOOKS if h in rule.hooks] or [case.hook or rule.hooks[0]]
            for hook in hooks:
                for where in ("draft_orders", "resources"):
                    for index, resource in enumerate(getattr(case, where)):
                        code = _rxnorm_code(resource)
                        classes = _classes(knowledge, code) if code else frozenset()
                        if not classes or (rule_id, hook, classes) in found:
                            continue
                        template = Template(rule, case, hook, where, index, classes)
                        if (
                            _outcome(template, code)
                            == case.expect.fires
                            != _outcome(template, _UNKNOWN)
                        ):
                            found[rule_id, hook, classes] = template
    return tuple(found.values())


def _outcome(template: Template, code: str | None) -> bool:
    result = run_case(_knowledge(), template.rule, template.with_code(code or _UNKNOWN))
    return result.fired


def _products() -> list[Any]:
    knowledge = _knowledge()
    return [pytest.param(code, id=code) for code in sorted(knowledge.ingredients, key=int)]


@pytest.mark.parametrize("product", _products())
def test_product_keeps_each_fitting_case_outcome(product: str) -> None:
    knowledge = _knowledge()
    classes = _classes(knowledge, product)
    assert classes, f"{product}: no value set names its ingredients"
    candidates = [t for t in templates() if t.classes <= classes]
    assert candidates, f"{product}: no rule case to try it in (classes {sorted(classes)})"
    # A product that also falls in a value set the rule reads and the template's code does not
    # (denosumab 60 mg, the osteoporosis dose, for the bone-agent rule) is a class of its own,
    # pinned by that rule's own cases.
    fitting = [t for t in candidates if not (classes - t.classes) & _read_by(t.rule.id)]
    wrong = [t.id for t in fitting if _outcome(t, product) != t.case.expect.fires]
    assert not wrong, f"{product} ({knowledge.ingredients[product]}) changes: {wrong}"


def test_every_drug_class_a_rule_reads_has_a_template() -> None:
    """A class whose rule has no code-sensitive case would leave its products untested."""
    knowledge = _knowledge()
    covered = {c for t in templates() for c in t.classes}
    classes = {c for code in knowledge.ingredients for c in _classes(knowledge, code)}
    assert classes <= covered, f"no code-sensitive case for {sorted(classes - covered)}"


def test_order_rules_are_tried_under_both_order_hooks() -> None:
    hooks = {(t.rule.id, t.hook) for t in templates()}
    for rule_id in ("endocrine-order-with-negative-er-pr", "her2-order-with-negative-her2"):
        assert {(rule_id, h) for h in _ORDER_HOOKS} <= hooks
