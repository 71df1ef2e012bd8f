"""Turn fired rules into CDS Hooks cards, using the templates in ``cards/``."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

from cds.engine import Fired
from cds.hooks import Action, Card, Coding, Link, OverrideReason, Source, Suggestion
from cds.knowledge import Knowledge
from cds.suggestion_check import fill_placeholders

__all__ = ["OVERRIDE_REASON_SYSTEM", "RULE_SYSTEM", "build_cards", "card_uuid"]

RULE_SYSTEM = "urn:cds:breast-cancer-followup:rule"
OVERRIDE_REASON_SYSTEM = "urn:cds:breast-cancer-followup:override-reason"
_NAMESPACE = uuid.UUID("6f0c7a52-52a3-4c59-9d0b-3f1a2f1d7c11")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def card_uuid(hook_instance: str, rule_id: str, part: str = "") -> str:
    """Stable per call and rule: the EHR re-calling with the same hookInstance sees the same ids."""
    return str(uuid.uuid5(_NAMESPACE, f"{hook_instance}\x1f{rule_id}\x1f{part}"))


def escape_markdown(text: str) -> str:
    """Data from the record is shown as text, never interpreted as markdown or HTML."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text.replace("\n", " "))


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
        template = knowledge.templates[rule.card.template]
        suggestions = []
        for spec in rule.suggestions:
            resource = fill_placeholders(dict(spec.resource), base)
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
        links = [
            Link(
                label=f"Patient page: {page.title}", url=f"{base}/education/{slug}", type="absolute"
            )
            for slug in rule.card.education
            for page in (knowledge.education[slug],)
        ]
        links.append(
            Link(label="Why this rule (knowledge page)", url=f"{base}/knowledge/{rule.id}")
        )
        cards.append(
            Card(
                uuid=card_uuid(hook_instance, rule.id),
                summary=template.summary,
                detail=_detail(knowledge, item),
                indicator=rule.card.indicator,
                source=Source(
                    label=f"Breast cancer follow-up: {rule.source.section}"[:100],
                    url=f"{base}/knowledge/{rule.id}",
                    topic=Coding(system=RULE_SYSTEM, code=rule.id, display=rule.title),
                ),
                suggestions=suggestions,
                selection_behavior="any" if suggestions else None,
                override_reasons=[
                    OverrideReason(
                        system=OVERRIDE_REASON_SYSTEM,
                        code=code,
                        display=knowledge.override_reasons[code].display,
                    )
                    for code in rule.override_reasons
                ],
                links=links,
            )
        )
    return cards


def _detail(knowledge: Knowledge, fired: Fired) -> str:
    rule = fired.rule
    template = knowledge.templates[rule.card.template]
    lines = [template.detail.strip(), "", "**Why this card**", ""]
    lines += [f"- {escape_markdown(evidence.line())}" for evidence in fired.evidence]
    lines += [f"- {escape_markdown(note)}" for note in fired.absent]
    source = knowledge.source
    beyond = " This rule goes beyond what the document says." if rule.source.beyond_source else ""
    lines += [
        "",
        f"**Source:** {source.title} ({source.publisher}, current as of "
        f"{source.current_as_of.isoformat()}), section *{rule.source.section}*: "
        f"{rule.source.summary}{beyond}",
        "",
        f"Rule `{rule.id}` v{rule.version} ({rule.review.state}).",
    ]
    return "\n".join(lines)
