"""Derive each service's prefetch templates from the data its rules read.

Nobody writes prefetch templates by hand: a service asks for exactly the resource kinds its
rules (and the definitions they reference) use, each the way its fact kind says
(:mod:`cds.kb.fact_kinds`), and observations and reports are narrowed to the codes the rules
can match, which keeps real EHR payloads small.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cds.kb.fact_kinds import KINDS, read_elements
from cds.kb.logic import ALBUMIN_VALUESET, Node, walk
from cds.kb.schemas import Rule
from cds.kb.terminology import CompiledValueSet

__all__ = ["PrefetchKey", "PrefetchPlan", "kinds_used", "plan_prefetch"]

PATIENT_KEY = "patient"


@dataclass(frozen=True)
class PrefetchKey:
    name: str
    template: str
    resource_type: str
    required: bool = False


@dataclass(frozen=True)
class PrefetchPlan:
    keys: tuple[PrefetchKey, ...]
    rule_keys: dict[str, frozenset[str]]  # rule id -> prefetch keys it needs

    def templates(self) -> dict[str, str]:
        return {key.name: key.template for key in self.keys}


_PATIENT = "{{context.patientId}}"


def kinds_used(nodes: Iterable[Node], definitions: Mapping[str, Node]) -> dict[str, set[str]]:
    """Fact kind -> value sets it is queried with, through definitions and anchors."""
    out: dict[str, set[str]] = {}
    for node in walk(nodes, definitions):
        fact = node.fact()
        if fact is None:
            continue
        kind, query = fact
        out.setdefault(kind, set()).update({query.valueset} if query.valueset else set())
        if query.value is not None and query.value.albumin_corrected:
            out.setdefault("observation", set()).add(ALBUMIN_VALUESET)
    return out


def plan_prefetch(
    hook: str,
    rules: Iterable[Rule],
    definitions: Mapping[str, Node],
    valuesets: Mapping[str, CompiledValueSet],
) -> PrefetchPlan:
    del hook  # every hook has context.patientId; templates do not differ by hook today
    keys: dict[str, PrefetchKey] = {
        PATIENT_KEY: PrefetchKey(PATIENT_KEY, f"Patient/{_PATIENT}", "Patient", required=True)
    }
    rule_keys: dict[str, frozenset[str]] = {}
    by_code: dict[str, tuple[str, set[str]]] = {}  # key -> (resource type, system|code)
    whole: set[str] = set()  # keys asked for without a code filter
    for rule in rules:
        used = kinds_used((*rule.logic.inclusion, *rule.logic.exclusion), definitions)
        names = {PATIENT_KEY}
        for kind, vs_ids in used.items():
            for query in KINDS[kind].prefetch:
                names.add(query.key)
                if query.by_code:
                    codes = by_code.setdefault(query.key, (query.resource_type, set()))[1]
                    for vs_id in vs_ids:
                        valueset = valuesets[vs_id]
                        if valueset.prefixes:  # a code family has no token search: ask for all
                            whole.add(query.key)
                        codes.update(f"{system}|{code}" for system, code in valueset.codes)
                    continue
                template = f"{query.resource_type}?patient={_PATIENT}{query.params}"
                if query.elements_read_only:
                    elements = read_elements(KINDS[kind], query.resource_type)
                    template += f"&_elements={','.join(elements)}"
                keys.setdefault(query.key, PrefetchKey(query.key, template, query.resource_type))
        rule_keys[rule.id] = frozenset(names)
    for name, (rtype, codes) in by_code.items():
        if name in whole:
            keys[name] = PrefetchKey(name, f"{rtype}?patient={_PATIENT}", rtype)
        elif codes:
            template = f"{rtype}?patient={_PATIENT}&code={','.join(sorted(codes))}"
            keys[name] = PrefetchKey(name, template, rtype)
    ordered = tuple(sorted(keys.values(), key=lambda k: (k.name != PATIENT_KEY, k.name)))
    return PrefetchPlan(keys=ordered, rule_keys=rule_keys)
