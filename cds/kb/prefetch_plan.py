"""Derive each service's prefetch templates from the data its rules read.

Nobody writes prefetch templates by hand: a service asks for exactly the resource kinds its
rules (and the definitions they reference) use, and observations are narrowed to the codes the
rules can match, which keeps real EHR payloads small.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cds.kb.logic import ALBUMIN_VALUESET, Node
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
_KEYS_OF_KIND: dict[str, tuple[tuple[str, str, str], ...]] = {
    "condition": (("conditions", "Condition", f"Condition?patient={_PATIENT}"),),
    # Each asks for the Medication resources its entries reference (R4 search parameter
    # "medication" of each type), so a medicationReference is read, not lost.
    "medication": tuple(
        (key, rtype, f"{rtype}?patient={_PATIENT}&_include={rtype}:medication")
        for key, rtype in (
            ("medicationRequests", "MedicationRequest"),
            ("medicationStatements", "MedicationStatement"),
            ("medicationAdministrations", "MedicationAdministration"),
        )
    ),
    "procedure": (("procedures", "Procedure", f"Procedure?patient={_PATIENT}"),),
    "document": (
        ("documents", "DocumentReference", f"DocumentReference?patient={_PATIENT}&status=current"),
    ),
    "research-subject": (
        ("researchSubjects", "ResearchSubject", f"ResearchSubject?patient={_PATIENT}"),
    ),
    "service-request": (
        ("serviceRequests", "ServiceRequest", f"ServiceRequest?patient={_PATIENT}"),
    ),
    # DiagnosticReports are asked for by the codes the rules read (below), like Observations:
    # a chart's reports carry their notes, and all of them can be megabytes.
    "imaging": (("imagingStudies", "ImagingStudy", f"ImagingStudy?patient={_PATIENT}"),),
}


def kinds_used(
    nodes: Iterable[Node], definitions: dict[str, Node], seen: frozenset[str] = frozenset()
) -> dict[str, set[str]]:
    """Fact kind -> value sets it is queried with, through definitions (cycle-safe)."""
    out: dict[str, set[str]] = {}
    for node in nodes:
        if node.ref is not None:
            if node.ref in seen or node.ref not in definitions:
                continue
            sub = kinds_used([definitions[node.ref]], definitions, seen | {node.ref})
        else:
            sub = kinds_used(node.children(), definitions, seen)
            fact = node.fact()
            if fact is not None:
                kind, query = fact
                sub.setdefault(kind, set()).update({query.valueset} if query.valueset else set())
                if query.value is not None and query.value.albumin_corrected:
                    sub.setdefault("observation", set()).add(ALBUMIN_VALUESET)
                for anchor in (query.after, query.before):
                    if (
                        anchor is not None
                        and anchor.name in definitions
                        and anchor.name not in seen
                    ):
                        for k, v in kinds_used(
                            [definitions[anchor.name]], definitions, seen | {anchor.name}
                        ).items():
                            sub.setdefault(k, set()).update(v)
        for kind, valuesets in sub.items():
            out.setdefault(kind, set()).update(valuesets)
    return out


def plan_prefetch(
    hook: str,
    rules: Iterable[Rule],
    definitions: dict[str, Node],
    valuesets: dict[str, CompiledValueSet],
) -> PrefetchPlan:
    del hook  # every hook has context.patientId; templates do not differ by hook today
    keys: dict[str, PrefetchKey] = {
        PATIENT_KEY: PrefetchKey(PATIENT_KEY, f"Patient/{_PATIENT}", "Patient", required=True)
    }
    rule_keys: dict[str, frozenset[str]] = {}
    observation_codes: set[str] = set()
    report_codes: set[str] = set()
    for rule in rules:
        used = kinds_used((*rule.logic.inclusion, *rule.logic.exclusion), definitions)
        names = {PATIENT_KEY}
        for kind, vs_ids in used.items():
            if kind == "observation":
                names.add("observations")
                for vs_id in vs_ids:
                    vs = valuesets[vs_id]
                    observation_codes.update(f"{system}|{code}" for system, code in vs.codes)
                continue
            if kind == "imaging":
                names.add("diagnosticReports")
                for vs_id in vs_ids:
                    vs = valuesets[vs_id]
                    report_codes.update(f"{system}|{code}" for system, code in vs.codes)
            for name, rtype, template in _KEYS_OF_KIND.get(kind, ()):
                names.add(name)
                keys.setdefault(name, PrefetchKey(name, template, rtype))
        rule_keys[rule.id] = frozenset(names)
    if observation_codes:
        codes = ",".join(sorted(observation_codes))
        keys["observations"] = PrefetchKey(
            "observations", f"Observation?patient={_PATIENT}&code={codes}", "Observation"
        )
    if report_codes:
        codes = ",".join(sorted(report_codes))
        keys["diagnosticReports"] = PrefetchKey(
            "diagnosticReports",
            f"DiagnosticReport?patient={_PATIENT}&code={codes}",
            "DiagnosticReport",
        )
    ordered = tuple(sorted(keys.values(), key=lambda k: (k.name != PATIENT_KEY, k.name)))
    return PrefetchPlan(keys=ordered, rule_keys=rule_keys)
