"""Export the knowledge as FHIR R4 resources other CDS engines can read.

Every service becomes a ``PlanDefinition`` of type ``eca-rule``: one action per rule, triggered
by the service's hook (a ``named-event`` trigger), with the rule's logic as readable
``applicability`` conditions (``text/x-readable``; our logic is data, not CQL), the cited section
of the source document as ``relatedArtifact``, and the rule's suggestions as sub-actions. Each
suggestion is also an ``ActivityDefinition`` (the sub-action's ``definitionCanonical``), so a
``$apply`` engine can create the suggested order. Every value set becomes a ``ValueSet`` whose
``compose`` lists the explicit codes; an ICD-10-CM family is an ``is-a`` filter on its prefix.
Each extension we use has its ``StructureDefinition``.

Everything is validated with the fhir.resources R4B models (FHIR 4.3.0, :data:`VALIDATED_WITH`)
before anything is written; the resources use only elements that R4 (4.0.1) has as well.
Canonical URLs start with a base the caller gives; a loopback base (the default public URL of a
development server) is refused unless asked for, since nobody else can resolve it.
"""

from __future__ import annotations

import hashlib
import ipaddress
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from fhir.resources.R4B.activitydefinition import ActivityDefinition
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.plandefinition import PlanDefinition
from fhir.resources.R4B.structuredefinition import StructureDefinition
from fhir.resources.R4B.valueset import ValueSet
from pydantic import BaseModel, ValidationError

from cds import __version__
from cds.errors import ConfigurationError, KnowledgeError
from cds.kb.code_systems import RULE_SYSTEM
from cds.kb.loader import Knowledge, Service
from cds.kb.logic_text import describe_node, describe_rule
from cds.kb.review import review_state
from cds.kb.schemas import Rule, SuggestionSpec, ValueSetFile
from cds.kb.terminology import canonical_system

__all__ = [
    "EXTENSIONS",
    "READABLE_LANGUAGE",
    "VALIDATED_WITH",
    "build_fhir_export",
    "check_canonical_base",
    "write_fhir_export",
]

VALIDATED_WITH = f"FHIR 4.3.0 (R4B) models of fhir.resources {version('fhir.resources')}"
TARGET_FHIR_VERSION = "4.0.1"  # what EHRs send and read; the exported elements exist in R4
READABLE_LANGUAGE = "text/x-readable"
_EXTENSION_BASE = "http://hl7.org/fhir/StructureDefinition/Extension"


# name -> (title, value type, where it is used, what it says)
EXTENSIONS: dict[str, tuple[str, str, str, str]] = {
    "rule-status": (
        "Rule status",
        "code",
        "PlanDefinition.action",
        "The rule's status in this service: active (it can fire), draft or retired.",
    ),
    "rule-version": (
        "Rule version",
        "string",
        "PlanDefinition.action",
        "The rule's own version, raised whenever its logic or card changes.",
    ),
    "card-indicator": (
        "Card indicator",
        "code",
        "PlanDefinition.action",
        "The CDS Hooks card indicator of the rule's card: info, warning or critical.",
    ),
    "review-state": (
        "Clinical review state",
        "string",
        "PlanDefinition.action",
        "Whether a clinician reviewed the rule, and who and when.",
    ),
    "code-verification": (
        "Code verification",
        "code",
        "ValueSet.compose.include.concept",
        "How the code was checked against its code system: V (verified in the published "
        "code system) or U (not yet verified).",
    ),
}
_PLAN_TYPE = "http://terminology.hl7.org/CodeSystem/plan-definition-type"
_ACTION_TYPE = "http://terminology.hl7.org/CodeSystem/action-type"
_EXPRESSION_NAME_MAX = 64
_FHIR_ID_MAX = 64


def _computable_name(kebab: str) -> str:
    """``bone-pain-after-breast-cancer`` -> ``BonePainAfterBreastCancer`` (FHIR ``name``)."""
    return "".join(part[:1].upper() + part[1:] for part in kebab.split("-"))


class _Urls:
    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")

    def canonical(self, rtype: str, rid: str) -> str:
        return f"{self.base}/fhir/{rtype}/{rid}"

    def extension(self, name: str) -> str:
        return f"{self.base}/fhir/StructureDefinition/{name}"


def check_canonical_base(base_url: str, *, allow_loopback: bool = False) -> str:
    """The base of the canonical URLs, refused when it is not http(s) or (unless allowed) when
    it names this machine (``localhost``, 127.0.0.0/8, ``::1``): nobody else could resolve it."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError([f"canonical base {base_url!r}: not an http(s) URL"])
    host = parts.hostname
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost" or host.endswith(".localhost")
    if loopback and not allow_loopback:
        raise ConfigurationError(
            [
                f"canonical base {base_url!r} names this machine, which nobody else can "
                "resolve: give --canonical-base https://your.host (or --allow-loopback)"
            ]
        )
    return base_url.rstrip("/")


def _structure_definition(name: str, urls: _Urls) -> dict[str, Any]:
    title, value_type, context, description = EXTENSIONS[name]
    url = urls.extension(name)
    return {
        "resourceType": "StructureDefinition",
        "id": name,
        "url": url,
        "version": __version__,
        "name": _computable_name(name),
        "title": title,
        "status": "active",
        "description": description,
        "fhirVersion": TARGET_FHIR_VERSION,
        "kind": "complex-type",
        "abstract": False,
        "context": [{"type": "element", "expression": context}],
        "type": "Extension",
        "baseDefinition": _EXTENSION_BASE,
        "derivation": "constraint",
        "differential": {
            "element": [
                {
                    "id": "Extension",
                    "path": "Extension",
                    "short": title,
                    "definition": description,
                    "max": "1",
                },
                {"id": "Extension.extension", "path": "Extension.extension", "max": "0"},
                {"id": "Extension.url", "path": "Extension.url", "fixedUri": url},
                {
                    "id": "Extension.value[x]",
                    "path": "Extension.value[x]",
                    "min": 1,
                    "type": [{"code": value_type}],
                },
            ]
        },
    }


def _activity_id(rule: Rule, suggestion_id: str) -> str:
    """``<rule id>.<suggestion id>``; when that is over FHIR's 64 characters, its first 55
    and 8 hex digits of its SHA-256 (stable, and distinct for distinct suggestions)."""
    full = f"{rule.id}.{suggestion_id}"
    if len(full) <= _FHIR_ID_MAX:
        return full
    return f"{full[:55].rstrip('-.')}-{hashlib.sha256(full.encode()).hexdigest()[:8]}"


def _activity_definition(rule: Rule, suggestion: SuggestionSpec, urls: _Urls) -> dict[str, Any]:
    """What one suggestion creates, for a ``$apply`` engine: its kind, code and intent."""
    resource = suggestion.resource
    rid = _activity_id(rule, suggestion.id)
    activity: dict[str, Any] = {
        "resourceType": "ActivityDefinition",
        "id": rid,
        "url": urls.canonical("ActivityDefinition", rid),
        "version": __version__,
        "name": _computable_name(f"{rule.id}-{suggestion.id}")[:255],
        "title": suggestion.label,
        "status": "active" if rule.status == "active" else "draft",
        "description": suggestion.description,
        "kind": resource.get("resourceType"),
        "intent": "proposal",
    }
    if isinstance(resource.get("code"), dict):
        activity["code"] = resource["code"]
    if isinstance(resource.get("priority"), str):
        activity["priority"] = resource["priority"]
    text = _payload_text(resource)
    if text is not None:
        quoted = text.replace("\\", "\\\\").replace("'", "\\'")
        activity["dynamicValue"] = [
            {
                "path": "payload[0].contentString",
                "expression": {"language": "text/fhirpath", "expression": f"'{quoted}'"},
            }
        ]
    return activity


def _payload_text(resource: dict[str, Any]) -> str | None:
    for payload in resource.get("payload") or ():
        if isinstance(payload, dict) and isinstance(payload.get("contentString"), str):
            return str(payload["contentString"])
    return None


def _condition(kind: str, index: int, rule: Rule, text: str) -> dict[str, Any]:
    name = f"{rule.id}.{kind}.{index + 1}"
    expression: dict[str, Any] = {
        "description": f"Rule {rule.id} v{rule.version}, {kind} {index + 1}",
        "language": READABLE_LANGUAGE,
        "expression": text,
    }
    if len(name) <= _EXPRESSION_NAME_MAX:
        expression["name"] = name
    return {"kind": "applicability", "expression": expression}


def _rule_action(knowledge: Knowledge, rule: Rule, hook: str, urls: _Urls) -> dict[str, Any]:
    docs = knowledge.definition_docs
    conditions = [
        _condition("inclusion", i, rule, describe_node(node, docs))
        for i, node in enumerate(rule.logic.inclusion)
    ] + [
        _condition("exclusion", i, rule, f"it is not the case that: {describe_node(node, docs)}")
        for i, node in enumerate(rule.logic.exclusion)
    ]
    source = knowledge.source
    beyond = " (the rule goes beyond what the document says)" if rule.source.beyond_source else ""
    action: dict[str, Any] = {
        "id": rule.id,
        "extension": [
            {"url": urls.extension("rule-status"), "valueCode": rule.status},
            {"url": urls.extension("rule-version"), "valueString": rule.version},
            {"url": urls.extension("card-indicator"), "valueCode": rule.card.indicator},
            {"url": urls.extension("review-state"), "valueString": review_state(knowledge, rule)},
        ],
        "title": rule.title,
        "description": " ".join(rule.rationale.split()),
        "textEquivalent": describe_rule(rule, docs),
        "code": [{"coding": [{"system": RULE_SYSTEM, "code": rule.id, "display": rule.title}]}],
        "documentation": [
            {
                "type": "citation",
                "label": rule.source.section,
                "display": f"{source.title}, section '{rule.source.section}'",
                "citation": f"{' '.join(rule.source.summary.split())}{beyond}",
            },
            {
                "type": "documentation",
                "display": "Rule page with its logic, cases and review state",
                "url": f"{urls.base}/knowledge/{rule.id}",
            },
        ],
        "trigger": [{"type": "named-event", "name": hook}],
        "condition": conditions,
    }
    if rule.suggestions:
        action["selectionBehavior"] = "any"
        action["action"] = [
            {
                "id": f"{rule.id}.{suggestion.id}",
                "title": suggestion.label,
                "description": suggestion.description,
                "type": {"coding": [{"system": _ACTION_TYPE, "code": "create"}]},
                **(
                    {"code": [suggestion.resource["code"]]}
                    if isinstance(suggestion.resource.get("code"), dict)
                    else {}
                ),
                "definitionCanonical": urls.canonical(
                    "ActivityDefinition", _activity_id(rule, suggestion.id)
                ),
            }
            for suggestion in rule.suggestions
        ]
    return action


def _plan_definition(knowledge: Knowledge, service: Service, urls: _Urls) -> dict[str, Any]:
    spec = service.spec
    source = knowledge.source
    active = any(rule.status == "active" for rule in service.rules)
    sections: dict[str, list[str]] = {}
    for rule in service.rules:
        sections.setdefault(rule.source.section, []).append(rule.id)
    return {
        "resourceType": "PlanDefinition",
        "id": spec.id,
        "url": urls.canonical("PlanDefinition", spec.id),
        "version": __version__,
        "name": _computable_name(spec.id),
        "title": spec.title,
        "type": {"coding": [{"system": _PLAN_TYPE, "code": "eca-rule", "display": "ECA Rule"}]},
        "status": "active" if active else "draft",
        "description": " ".join(spec.description.split()),
        "relatedArtifact": [
            {
                "type": "citation",
                "display": source.title,
                "citation": (
                    f"{source.title}. {source.publisher}, current as of "
                    f"{source.current_as_of.isoformat()}."
                ),
            },
            *(
                {
                    "type": "citation",
                    "label": section,
                    "display": f"{source.title}, section '{section}'",
                    "citation": f"Cited by the rules {', '.join(rule_ids)}.",
                }
                for section, rule_ids in sections.items()
            ),
        ],
        "action": [_rule_action(knowledge, rule, spec.hook, urls) for rule in service.rules],
    }


def _value_set(vs: ValueSetFile, active: bool, urls: _Urls) -> dict[str, Any]:
    includes: dict[str, list[dict[str, Any]]] = {}
    for entry in vs.codes:
        system = canonical_system(entry.system) or entry.system
        concept: dict[str, Any] = {
            "extension": [
                {"url": urls.extension("code-verification"), "valueCode": entry.verified}
            ],
            "code": entry.code,
            "display": entry.display,
        }
        includes.setdefault(system, []).append(concept)
    compose: list[dict[str, Any]] = [
        {"system": system, "concept": concepts} for system, concepts in includes.items()
    ]
    compose += [
        {
            "system": family.system_uri,
            "filter": [{"property": "concept", "op": "is-a", "value": family.prefix}],
        }
        for family in vs.families
    ]
    compose += [
        {
            "system": canonical_system(root.system) or root.system,
            "filter": [{"property": "concept", "op": "is-a", "value": root.code}],
        }
        for root in vs.descendants_of
    ]
    if vs.include:
        compose.append({"valueSet": [urls.canonical("ValueSet", i) for i in vs.include]})
    description = " ".join(vs.description.split())
    if vs.families:
        prefixes = ", ".join(f.prefix for f in vs.families)
        description += (
            f" ICD-10-CM families ({prefixes}) are matched by code prefix: every code under "
            "the stated code, written with or without the dot."
        )
    return {
        "resourceType": "ValueSet",
        "id": vs.id,
        "url": urls.canonical("ValueSet", vs.id),
        "version": __version__,
        "name": _computable_name(vs.id),
        "title": vs.title,
        "status": "active" if active else "draft",
        "description": description,
        "compose": {"include": compose},
    }


def _validate(name: str, model: type[BaseModel], resource: dict[str, Any]) -> list[str]:
    problems = []
    if len(str(resource.get("id", ""))) > _FHIR_ID_MAX:
        # FHIR limits ids to 64 characters; the R4B models check the characters, not the length
        problems.append(f"{name}: id: longer than the {_FHIR_ID_MAX} characters FHIR allows")
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        problems += [
            f"{name}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        ]
    return problems


def build_fhir_export(knowledge: Knowledge, *, base_url: str) -> dict[str, dict[str, Any]]:
    """File name -> FHIR resource, every one validated. Raises KnowledgeError if any is invalid."""
    urls = _Urls(base_url)
    active_rules = [r for r in knowledge.rules.values() if r.status == "active"]
    active_valuesets, _ = knowledge.used_by(active_rules)
    out: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for service_id, service in sorted(knowledge.services.items()):
        name = f"PlanDefinition-{service_id}.json"
        out[name] = _plan_definition(knowledge, service, urls)
        problems += _validate(name, PlanDefinition, out[name])
    for _, rule in sorted(knowledge.rules.items()):
        for suggestion in rule.suggestions:
            name = f"ActivityDefinition-{_activity_id(rule, suggestion.id)}.json"
            out[name] = _activity_definition(rule, suggestion, urls)
            problems += _validate(name, ActivityDefinition, out[name])
    for vs_id, vs_file in sorted(knowledge.valueset_files.items()):
        name = f"ValueSet-{vs_id}.json"
        out[name] = _value_set(vs_file, vs_id in active_valuesets, urls)
        problems += _validate(name, ValueSet, out[name])
    for extension in EXTENSIONS:
        name = f"StructureDefinition-{extension}.json"
        out[name] = _structure_definition(extension, urls)
        problems += _validate(name, StructureDefinition, out[name])
    bundle = {
        "resourceType": "Bundle",
        "id": "breast-cancer-followup-knowledge",
        "type": "collection",
        "entry": [{"fullUrl": resource["url"], "resource": resource} for resource in out.values()],
    }
    problems += _validate("Bundle-knowledge.json", Bundle, bundle)
    if problems:
        raise KnowledgeError([f"FHIR export: {p}" for p in problems])
    out["Bundle-knowledge.json"] = bundle
    return out


def write_fhir_export(knowledge: Knowledge, outdir: Path, *, base_url: str) -> list[Path]:
    """Build and validate everything first, then write one JSON file per resource."""
    resources = build_fhir_export(knowledge, base_url=base_url)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, resource in resources.items():
        path = outdir / name
        path.write_bytes(orjson.dumps(resource, option=orjson.OPT_INDENT_2) + b"\n")
        written.append(path)
    return written
