"""Turn fired rules into CDS Hooks cards, using the templates in ``cards/``."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cds.call.findings import CardFinding
from cds.engine.evaluate import Evidence, Fired
from cds.errors import KnowledgeError
from cds.kb.code_systems import RULE_SYSTEM
from cds.kb.finding_relations import POPULATION_DEFINITIONS
from cds.kb.loader import Knowledge
from cds.kb.review import is_reviewed
from cds.kb.schemas import Finding, Rule, SuggestionSpec
from cds.kb.suggestion_check import fill_placeholders
from cds.protocol.wire import (
    INDICATOR_RANK,
    Action,
    Card,
    Coding,
    Link,
    OverrideReason,
    Source,
    Suggestion,
    dump_model,
)

__all__ = [
    "DETAIL_LIMIT",
    "OVERRIDE_REASON_SYSTEM",
    "build_cards",
    "card_uuid",
    "render_cards",
    "render_findings",
]

OVERRIDE_REASON_SYSTEM = "urn:cds:breast-cancer-followup:override-reason"
_NAMESPACE = uuid.UUID("6f0c7a52-52a3-4c59-9d0b-3f1a2f1d7c11")
_NAMESPACE_BYTES = _NAMESPACE.bytes
# Each markdown-special character gets a backslash, the backslash itself first so that the
# ones added are not doubled; a line break becomes a space. Plain replaces: several times
# faster than str.translate with a dict or a regex on these short lines.
_MARKDOWN_ESCAPES = tuple((c, "\\" + c) for c in "\\`*_{}[]<>()#+!|~")

# A card's detail is a few lines: what to consider and the facts that fired it. The source,
# rule version and rationale are one link away (the rule's knowledge page). The limits and
# why they are what they are: docs/alert-burden.md.
DETAIL_LIMIT = 700  # characters of rendered markdown, facts included
TEMPLATE_DETAIL_LIMIT = 260  # the template's own sentence(s)
_FACTS_SHOWN = 3
_FACT_CHARS = 80  # a fact line, markdown-escaped
_COVERS_CHARS = 120


def card_uuid(hook_instance: str, rule_id: str, part: str = "") -> str:
    """Stable per call and rule: the EHR re-calling with the same hookInstance sees the same ids.

    ``uuid.uuid5`` computed without building a ``UUID`` object (a dozen are made per call).
    """
    name = f"{hook_instance}\x1f{rule_id}\x1f{part}".encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest[:16].hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def escape_markdown(text: str) -> str:
    """Data from the record is shown as text, never interpreted as markdown or HTML."""
    for special, escaped in _MARKDOWN_ESCAPES:
        if special in text:
            text = text.replace(special, escaped)
    return text.replace("\n", " ")


@dataclass(frozen=True)
class _SuggestionParts:
    """One suggestion as wire JSON, less its uuid; ``resource`` has the patient slots blank."""

    spec_id: str
    wire: dict[str, Any]  # the whole suggestion: uuid and actions are replaced per call
    action: dict[str, Any]  # the whole action: resource is replaced per call
    resource: dict[str, Any]  # pruned; subject/recipient (when present) are set per call
    resource_without_patient: dict[str, Any]  # pruned, as it goes out when there is no patient
    recipient: bool  # a CommunicationRequest: the patient is its recipient too


@dataclass(frozen=True)
class _RuleParts:
    """What a rule's card holds whatever the patient, as wire JSON (pruned, camelCase).

    Built once per knowledge and base URL from the pydantic models, so each part is validated
    once; a call then only fills in the uuids, the detail and the patient. The nested dicts
    are shared between calls and must not be mutated.
    """

    summary: str
    indicator: str
    source: dict[str, Any]
    override_reasons: list[dict[str, Any]]
    links: list[dict[str, Any]]
    suggestions: list[_SuggestionParts]
    detail_head: str  # the template's sentence(s): what to consider and why


# (id(knowledge), id(rule), base) -> (knowledge, rule, parts); the objects are kept so that an
# id reused after garbage collection can never match.
_PARTS: dict[tuple[int, int, str], tuple[Knowledge, Rule, _RuleParts]] = {}
# The same for merged cards: (id(knowledge), member rule ids, base).
_MERGED: dict[tuple[int, tuple[str, ...], str], tuple[Knowledge, _RuleParts]] = {}
_PARTS_LIMIT = 4096
# Stands in for the patient while the static resource is pruned: keeps the key's position.
_PATIENT_SLOT = {"reference": "Patient/-"}


def _suggestion_parts(spec: SuggestionSpec, base: str) -> _SuggestionParts:
    filled: dict[str, Any] = fill_placeholders(dict(spec.resource), base)
    recipient = filled.get("resourceType") == "CommunicationRequest"
    with_slots = dict(filled)
    with_slots["subject"] = _PATIENT_SLOT
    if recipient:
        with_slots["recipient"] = [_PATIENT_SLOT]
    wire, without_patient = (
        dump_model(
            Suggestion(
                label=spec.label,
                uuid="-",
                is_recommended=spec.recommended or None,
                actions=[Action(type="create", description=spec.description, resource=resource)],
            )
        )
        for resource in (with_slots, filled)
    )
    action = wire["actions"][0]
    return _SuggestionParts(
        spec_id=spec.id,
        wire=wire,
        action=action,
        resource=action["resource"],
        resource_without_patient=without_patient["actions"][0]["resource"],
        recipient=recipient,
    )


def _source(knowledge: Knowledge, rule: Rule, base: str, label: str, topic: Coding) -> Source:
    reviewed = is_reviewed(knowledge, rule)
    prefix = "Breast cancer follow-up" if reviewed else "Breast cancer follow-up (unreviewed rule)"
    return Source(label=f"{prefix}: {label}"[:100], url=f"{base}/knowledge/{rule.id}", topic=topic)


def _links(knowledge: Knowledge, rules: Sequence[Rule], base: str) -> list[Link]:
    links: list[Link] = []
    slugs = list(dict.fromkeys(slug for rule in rules for slug in rule.card.education))
    for slug in slugs:
        page = knowledge.education[slug]
        links.append(
            Link(
                label=f"Patient page: {page.title}", url=f"{base}/education/{slug}", type="absolute"
            )
        )
    for rule in rules:
        label = "Why this rule (knowledge page)" if len(rules) == 1 else f"Why: {rule.title}"
        links.append(Link(label=label[:120], url=f"{base}/knowledge/{rule.id}"))
    return links


def _checked(parts: _RuleParts, key: str, where: str) -> _RuleParts:
    """The whole card is checked against the Card model once, with stand-ins for what varies."""
    sample = _card(parts, key, hook_instance="-", patient_id="-", detail="-")
    if dump_model(Card.model_validate(sample)) != sample:
        raise KnowledgeError([f"{where}: its card renders unlike the Card model"])
    return parts


def _parts(knowledge: Knowledge, rule: Rule, base: str) -> _RuleParts:
    key = (id(knowledge), id(rule), base)
    cached = _PARTS.get(key)
    if cached is not None and cached[0] is knowledge and cached[1] is rule:
        return cached[2]
    template = knowledge.templates[rule.card.template]
    topic = Coding(system=RULE_SYSTEM, code=rule.id, display=rule.title)
    parts = _RuleParts(
        summary=template.summary,
        indicator=rule.card.indicator,
        source=dump_model(_source(knowledge, rule, base, rule.source.section, topic)),
        override_reasons=[
            dump_model(
                OverrideReason(
                    system=OVERRIDE_REASON_SYSTEM,
                    code=code,
                    display=knowledge.override_reasons[code].display,
                )
            )
            for code in rule.override_reasons
        ],
        links=[dump_model(link) for link in _links(knowledge, [rule], base)],
        suggestions=[_suggestion_parts(spec, base) for spec in rule.suggestions],
        detail_head=template.detail.strip(),
    )
    _checked(parts, rule.id, f"rules/{rule.id}.yaml")
    if len(_PARTS) >= _PARTS_LIMIT:
        _PARTS.clear()
    _PARTS[key] = (knowledge, rule, parts)
    return parts


def _merged_parts(
    knowledge: Knowledge, finding: Finding, rules: Sequence[Rule], base: str
) -> _RuleParts:
    """One card for the fired members of a finding: the finding's template, every member's
    suggestions (ids prefixed by the rule's), the override reasons all members offer."""
    key = (id(knowledge), tuple(r.id for r in rules), base)
    cached = _MERGED.get(key)
    if cached is not None and cached[0] is knowledge:
        return cached[1]
    template = knowledge.templates[finding.template]
    lead = rules[0]
    topic = Coding(system=RULE_SYSTEM, code=finding.id, display=finding.title)
    reasons = [
        code for code in lead.override_reasons if all(code in r.override_reasons for r in rules)
    ]
    suggestions = [
        _suggestion_parts(spec.model_copy(update={"id": f"{rule.id}-{spec.id}"}), base)
        for rule in rules
        for spec in rule.suggestions
    ]
    parts = _RuleParts(
        summary=template.summary,
        indicator=min((r.card.indicator for r in rules), key=INDICATOR_RANK.__getitem__),
        source=dump_model(_source(knowledge, lead, base, finding.title, topic)),
        override_reasons=[
            dump_model(
                OverrideReason(
                    system=OVERRIDE_REASON_SYSTEM,
                    code=code,
                    display=knowledge.override_reasons[code].display,
                )
            )
            for code in reasons
        ],
        links=[dump_model(link) for link in _links(knowledge, rules, base)],
        suggestions=suggestions,
        detail_head=template.detail.strip(),
    )
    _checked(parts, finding.id, f"findings.yaml ({finding.id})")
    if len(_MERGED) >= _PARTS_LIMIT:
        _MERGED.clear()
    _MERGED[key] = (knowledge, parts)
    return parts


def _card(
    parts: _RuleParts, card_key: str, *, hook_instance: str, patient_id: str | None, detail: str
) -> dict[str, Any]:
    card: dict[str, Any] = {
        "uuid": card_uuid(hook_instance, card_key),
        "summary": parts.summary,
        "detail": detail,
        "indicator": parts.indicator,
        "source": parts.source,
    }
    if parts.suggestions:
        suggestions = []
        for suggestion in parts.suggestions:
            if patient_id:
                resource = dict(suggestion.resource)
                resource["subject"] = {"reference": f"Patient/{patient_id}"}
                if suggestion.recipient:
                    resource["recipient"] = [{"reference": f"Patient/{patient_id}"}]
            else:
                resource = suggestion.resource_without_patient
            # Keys assigned over the template's keep their place: the wire order is the model's.
            wire = dict(suggestion.wire)
            wire["uuid"] = card_uuid(hook_instance, card_key, suggestion.spec_id)
            action = dict(suggestion.action)
            action["resource"] = resource
            wire["actions"] = [action]
            suggestions.append(wire)
        card["suggestions"] = suggestions
        card["selectionBehavior"] = "any"
    if parts.override_reasons:
        card["overrideReasons"] = parts.override_reasons
    if parts.links:
        card["links"] = parts.links
    return card


def render_findings(
    knowledge: Knowledge,
    findings: Iterable[CardFinding],
    *,
    hook_instance: str,
    patient_id: str | None,
    base_url: str,
) -> list[dict[str, Any]]:
    """One card per finding, as wire JSON. Nested parts are shared between calls: serialise
    them, never mutate them."""
    base = base_url.rstrip("/")
    population = _population_labels(knowledge)
    cards = []
    for item in findings:
        if item.finding is not None:
            parts = _merged_parts(knowledge, item.finding, item.rules, base)
            items = [f"- {m.rule.finding.item}" for m in item.fired if m.rule.finding is not None]
            detail = "\n".join([parts.detail_head, "", *items])
        else:
            parts = _parts(knowledge, item.lead.rule, base)
            detail = _detail(parts.detail_head, item.lead, item.covers, population)
        cards.append(
            _card(
                parts, item.key, hook_instance=hook_instance, patient_id=patient_id, detail=detail
            )
        )
    return cards


def render_cards(
    knowledge: Knowledge,
    fired: Iterable[Fired],
    *,
    hook_instance: str,
    patient_id: str | None,
    base_url: str,
) -> list[dict[str, Any]]:
    """One card per fired rule, as wire JSON, in the order given (no supersession or merging:
    :func:`cds.call.findings.resolve_findings` decides that, :func:`render_findings` renders it)."""
    return render_findings(
        knowledge,
        [CardFinding(key=f.rule.id, fired=(f,), indicator=f.rule.card.indicator) for f in fired],
        hook_instance=hook_instance,
        patient_id=patient_id,
        base_url=base_url,
    )


def build_cards(
    knowledge: Knowledge,
    fired: Iterable[Fired],
    *,
    hook_instance: str,
    patient_id: str | None,
    base_url: str,
) -> list[Card]:
    """The cards as validated :class:`~cds.protocol.wire.Card` models (slower than
    :func:`render_cards`)."""
    wire = render_cards(
        knowledge, fired, hook_instance=hook_instance, patient_id=patient_id, base_url=base_url
    )
    return [Card.model_validate(card) for card in wire]


def fact_line(evidence: Evidence) -> str:
    """A fact as a card shows it: what, its value, when (the resource id is on the preview)."""
    value = f": {evidence.value}" if evidence.value else ""
    when = f" on {evidence.date}" if evidence.date else ""
    return f"{evidence.label}: {evidence.display}{value}{when}"


def _clipped(line: str, limit: int = _FACT_CHARS) -> str:
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "\u2026"


def _detail(head: str, fired: Fired, covers: Sequence[Rule], population: frozenset[str]) -> str:
    """The template's sentence, then at most three facts that fired the card, then the rules
    this card stands in for. The facts that found something come first, one per label, then
    the absences relied on, then who the rule is for (the cancer itself); the rest are
    counted (the preview and `cds evaluate` list them all)."""
    found: list[str] = []
    context: list[str] = []
    labels: set[str] = set()
    for evidence in fired.evidence:
        if evidence.label in labels:
            continue
        labels.add(evidence.label)
        (context if evidence.label in population else found).append(fact_line(evidence))
    facts = [*found, *fired.absent, *context]
    hidden = len(fired.evidence) + len(fired.absent) - min(len(facts), _FACTS_SHOWN)
    lines = [head, ""]
    # Clipped once escaped, so that the limit holds for what is sent.
    lines += [f"- {_clipped(escape_markdown(fact))}" for fact in facts[:_FACTS_SHOWN]]
    if hidden > 0:
        lines.append(f"- and {hidden} more on record")
    if covers:
        titles = "; ".join(rule.title for rule in covers)
        lines += ["", _clipped(f"Also covers: {escape_markdown(titles)}", _COVERS_CHARS)]
    return "\n".join(lines)


def _population_labels(knowledge: Knowledge) -> frozenset[str]:
    """The labels facts of the population definitions carry (their descriptions)."""
    cached = _POPULATION.get(id(knowledge))
    if cached is not None and cached[0] is knowledge:
        return cached[1]
    docs = knowledge.definition_docs
    labels = frozenset(docs[n].description for n in POPULATION_DEFINITIONS if n in docs)
    _POPULATION.clear()
    _POPULATION[id(knowledge)] = (knowledge, labels)
    return labels


_POPULATION: dict[int, tuple[Knowledge, frozenset[str]]] = {}
