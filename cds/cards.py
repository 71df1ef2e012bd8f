"""Turn fired rules into CDS Hooks cards, using the templates in ``cards/``."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cds.engine import Fired
from cds.hooks import Action, Card, Coding, Link, OverrideReason, Source, Suggestion
from cds.knowledge import Knowledge
from cds.rules import Rule, SuggestionSpec
from cds.suggestion_check import fill_placeholders

__all__ = ["OVERRIDE_REASON_SYSTEM", "RULE_SYSTEM", "build_cards", "card_uuid"]

RULE_SYSTEM = "urn:cds:breast-cancer-followup:rule"
OVERRIDE_REASON_SYSTEM = "urn:cds:breast-cancer-followup:override-reason"
_NAMESPACE = uuid.UUID("6f0c7a52-52a3-4c59-9d0b-3f1a2f1d7c11")
# Each markdown-special character gets a backslash; a line break becomes a space.
_MARKDOWN_ESCAPES = {ord(c): "\\" + c for c in "\\`*_{}[]<>()#+!|~"} | {ord("\n"): " "}


def card_uuid(hook_instance: str, rule_id: str, part: str = "") -> str:
    """Stable per call and rule: the EHR re-calling with the same hookInstance sees the same ids."""
    return str(uuid.uuid5(_NAMESPACE, f"{hook_instance}\x1f{rule_id}\x1f{part}"))


def escape_markdown(text: str) -> str:
    """Data from the record is shown as text, never interpreted as markdown or HTML."""
    return text.translate(_MARKDOWN_ESCAPES)


@dataclass(frozen=True)
class _RuleParts:
    """What a rule's card holds whatever the patient: built once per knowledge and base URL."""

    summary: str
    source: Source
    override_reasons: list[OverrideReason]
    links: list[Link]
    suggestions: list[tuple[SuggestionSpec, dict[str, Any]]]  # resources, placeholders filled
    detail_head: list[str]
    detail_tail: list[str]


# (id(knowledge), id(rule), base) -> (knowledge, rule, parts); the objects are kept so that an
# id reused after garbage collection can never match.
_PARTS: dict[tuple[int, int, str], tuple[Knowledge, Rule, _RuleParts]] = {}
_PARTS_LIMIT = 4096


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
        source=Source(
            label=f"Breast cancer follow-up: {rule.source.section}"[:100],
            url=f"{base}/knowledge/{rule.id}",
            topic=Coding(system=RULE_SYSTEM, code=rule.id, display=rule.title),
        ),
        override_reasons=[
            OverrideReason(
                system=OVERRIDE_REASON_SYSTEM,
                code=code,
                display=knowledge.override_reasons[code].display,
            )
            for code in rule.override_reasons
        ],
        links=links,
        suggestions=[
            (spec, fill_placeholders(dict(spec.resource), base)) for spec in rule.suggestions
        ],
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
    if len(_PARTS) >= _PARTS_LIMIT:
        _PARTS.clear()
    _PARTS[key] = (knowledge, rule, parts)
    return parts


def build_cards(
    knowledge: Knowledge,
    fired: Iterable[Fired],
    *,
    hook_instance: str,
    patient_id: str | None,
    base_url: str,
) -> list[Card]:
    base = base_url.rstrip("/")
    cards = []
    for item in fired:
        rule = item.rule
        parts = _parts(knowledge, rule, base)
        suggestions = []
        for spec, filled in parts.suggestions:
            resource = dict(filled)  # nested parts are shared, read-only, between calls
            if patient_id:
                resource["subject"] = {"reference": f"Patient/{patient_id}"}
                if resource.get("resourceType") == "CommunicationRequest":
                    resource["recipient"] = [{"reference": f"Patient/{patient_id}"}]
            suggestions.append(
                Suggestion(
                    label=spec.label,
                    uuid=card_uuid(hook_instance, rule.id, spec.id),
                    is_recommended=spec.recommended or None,
                    actions=[
                        Action(type="create", description=spec.description, resource=resource)
                    ],
                )
            )
        cards.append(
            Card(
                uuid=card_uuid(hook_instance, rule.id),
                summary=parts.summary,
                detail=_detail(parts, item),
                indicator=rule.card.indicator,
                source=parts.source,
                suggestions=suggestions,
                selection_behavior="any" if suggestions else None,
                override_reasons=parts.override_reasons,
                links=parts.links,
            )
        )
    return cards


def _detail(parts: _RuleParts, fired: Fired) -> str:
    lines = list(parts.detail_head)
    lines += [f"- {escape_markdown(evidence.line())}" for evidence in fired.evidence]
    lines += [f"- {escape_markdown(note)}" for note in fired.absent]
    lines += parts.detail_tail
    return "\n".join(lines)
