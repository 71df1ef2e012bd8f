"""Turn fired rules into CDS Hooks cards, using the templates in ``cards/``."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cds.engine import Fired
from cds.errors import KnowledgeError
from cds.hooks import (
    Action,
    Card,
    Coding,
    Link,
    OverrideReason,
    Source,
    Suggestion,
    dump_model,
)
from cds.knowledge import Knowledge
from cds.rules import Rule, SuggestionSpec
from cds.suggestion_check import fill_placeholders

__all__ = [
    "OVERRIDE_REASON_SYSTEM",
    "RULE_SYSTEM",
    "build_cards",
    "card_uuid",
    "render_cards",
]

RULE_SYSTEM = "urn:cds:breast-cancer-followup:rule"
OVERRIDE_REASON_SYSTEM = "urn:cds:breast-cancer-followup:override-reason"
_NAMESPACE = uuid.UUID("6f0c7a52-52a3-4c59-9d0b-3f1a2f1d7c11")
_NAMESPACE_BYTES = _NAMESPACE.bytes
# Each markdown-special character gets a backslash, the backslash itself first so that the
# ones added are not doubled; a line break becomes a space. Plain replaces: several times
# faster than str.translate with a dict or a regex on these short lines.
_MARKDOWN_ESCAPES = tuple((c, "\\" + c) for c in "\\`*_{}[]<>()#+!|~")


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
    detail_head: list[str]
    detail_tail: list[str]


# (id(knowledge), id(rule), base) -> (knowledge, rule, parts); the objects are kept so that an
# id reused after garbage collection can never match.
_PARTS: dict[tuple[int, int, str], tuple[Knowledge, Rule, _RuleParts]] = {}
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


def _parts(knowledge: Knowledge, rule: Rule, base: str) -> _RuleParts:
    key = (id(knowledge), id(rule), base)
    cached = _PARTS.get(key)
    if cached is not None and cached[0] is knowledge and cached[1] is rule:
        return cached[2]
    template = knowledge.templates[rule.card.template]
    links = [
        Link(label=f"Patient page: {page.title}", url=f"{base}/education/{slug}", type="absolute")
        for slug in rule.card.education
        for page in (knowledge.education[slug],)
    ]
    links.append(Link(label="Why this rule (knowledge page)", url=f"{base}/knowledge/{rule.id}"))
    source = knowledge.source
    beyond = " This rule goes beyond what the document says." if rule.source.beyond_source else ""
    parts = _RuleParts(
        summary=template.summary,
        indicator=rule.card.indicator,
        source=dump_model(
            Source(
                label=f"Breast cancer follow-up: {rule.source.section}"[:100],
                url=f"{base}/knowledge/{rule.id}",
                topic=Coding(system=RULE_SYSTEM, code=rule.id, display=rule.title),
            )
        ),
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
        links=[dump_model(link) for link in links],
        suggestions=[_suggestion_parts(spec, base) for spec in rule.suggestions],
        detail_head=[template.detail.strip(), "", "**Why this card**", ""],
        detail_tail=[
            "",
            f"**Source:** {source.title} ({source.publisher}, current as of "
            f"{source.current_as_of.isoformat()}), section *{rule.source.section}*: "
            f"{rule.source.summary}{beyond}",
            "",
            f"Rule `{rule.id}` v{rule.version} ({rule.review.state}).",
        ],
    )
    # The whole card is checked against the Card model once, with stand-ins for what varies.
    sample = _card(parts, rule.id, hook_instance="-", patient_id="-", detail="-")
    if dump_model(Card.model_validate(sample)) != sample:
        raise KnowledgeError([f"rules/{rule.id}.yaml: its card renders unlike the Card model"])
    if len(_PARTS) >= _PARTS_LIMIT:
        _PARTS.clear()
    _PARTS[key] = (knowledge, rule, parts)
    return parts


def _card(
    parts: _RuleParts, rule_id: str, *, hook_instance: str, patient_id: str | None, detail: str
) -> dict[str, Any]:
    card: dict[str, Any] = {
        "uuid": card_uuid(hook_instance, rule_id),
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
            wire["uuid"] = card_uuid(hook_instance, rule_id, suggestion.spec_id)
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


def render_cards(
    knowledge: Knowledge,
    fired: Iterable[Fired],
    *,
    hook_instance: str,
    patient_id: str | None,
    base_url: str,
) -> list[dict[str, Any]]:
    """The cards as wire JSON, exactly what ``dump_model`` of :func:`build_cards` gives.

    Nested parts are shared between calls (read-only): serialise them, never mutate them.
    """
    base = base_url.rstrip("/")
    cards = []
    for item in fired:
        parts = _parts(knowledge, item.rule, base)
        cards.append(
            _card(
                parts,
                item.rule.id,
                hook_instance=hook_instance,
                patient_id=patient_id,
                detail=_detail(parts, item),
            )
        )
    return cards


def build_cards(
    knowledge: Knowledge,
    fired: Iterable[Fired],
    *,
    hook_instance: str,
    patient_id: str | None,
    base_url: str,
) -> list[Card]:
    """The cards as validated :class:`~cds.hooks.Card` models (slower than :func:`render_cards`)."""
    wire = render_cards(
        knowledge, fired, hook_instance=hook_instance, patient_id=patient_id, base_url=base_url
    )
    return [Card.model_validate(card) for card in wire]


def _detail(parts: _RuleParts, fired: Fired) -> str:
    lines = list(parts.detail_head)
    lines += [f"- {escape_markdown(evidence.line())}" for evidence in fired.evidence]
    lines += [f"- {escape_markdown(note)}" for note in fired.absent]
    lines += parts.detail_tail
    return "\n".join(lines)
