"""Cards rendered straight to wire JSON equal what the pydantic models give, for every rule.

The reference below builds each card from the :mod:`cds.protocol.wire` models and dumps it with
``dump_model``, the way every card was rendered before :func:`cds.call.render.render_cards`.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import orjson
import pytest

from cds.call.render import escape_markdown, render_cards
from cds.call.service_call import CallResult
from cds.engine.evaluate import Evidence, Fired
from cds.kb.card_parts import OVERRIDE_REASON_SYSTEM, card_uuid
from cds.kb.code_systems import RULE_SYSTEM
from cds.kb.loader import Knowledge
from cds.kb.schemas import Rule
from cds.kb.suggestion_check import fill_placeholders
from cds.protocol.wire import (
    Action,
    Card,
    Coding,
    Link,
    OverrideReason,
    Source,
    Suggestion,
    dump_model,
)


def _reference_card(
    knowledge: Knowledge, fired: Fired, *, hook_instance: str, patient_id: str | None, base: str
) -> dict[str, Any]:
    rule = fired.rule
    template = knowledge.templates[rule.card.template]
    links = [
        Link(label=f"Patient page: {page.title}", url=f"{base}/education/{slug}")
        for slug in rule.card.education
        for page in (knowledge.education[slug],)
    ]
    links.append(Link(label="Why this rule (knowledge page)", url=f"{base}/knowledge/{rule.id}"))
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
                actions=[Action(type="create", description=spec.description, resource=resource)],
            )
        )
    # The template's sentence, then the three facts of _fired: found first, then the absence.
    lines = [
        template.detail.strip(),
        "",
        "- " + escape_markdown("bone pain: Pain [in] *bone* on 2026-05-01"),
        "- calcium: Calcium: 11.2 mg/dL",
        "- No known bone metastasis on record",
    ]
    reviewed = rule.review.reviewed_by and rule.review.reviewed_on
    prefix = "Breast cancer follow-up" if reviewed else "Breast cancer follow-up (unreviewed rule)"
    card = Card(
        uuid=card_uuid(hook_instance, rule.id),
        summary=template.summary,
        detail="\n".join(lines),
        indicator=rule.card.indicator,
        source=Source(
            label=f"{prefix}: {rule.source.section}"[:100],
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
    return dump_model(card)


def _fired(rule: Rule) -> Fired:
    evidence = (
        Evidence("bone pain", "Condition", "c1", "Pain [in] *bone*", "2026-05-01"),
        Evidence("calcium", "Observation", "o1", "Calcium", None, value="11.2 mg/dL"),
    )
    return Fired(rule=rule, evidence=evidence, absent=("No known bone metastasis on record",))


def _no_empties(value: Any, path: str) -> None:
    assert value is not None, path
    if isinstance(value, dict | list):
        assert value, path
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            _no_empties(item, f"{path}.{key}")


@pytest.mark.parametrize("patient_id", ["p-1", None])
@pytest.mark.parametrize("base_url", ["http://cds.example", "https://cds.example/root/"])
def test_every_rule_renders_as_the_models_do(
    knowledge: Knowledge, patient_id: str | None, base_url: str
) -> None:
    rules = sorted(knowledge.rules.values(), key=lambda rule: rule.id)
    assert rules
    fired = [_fired(rule) for rule in rules]
    wire = render_cards(
        knowledge, fired, hook_instance="hi-1", patient_id=patient_id, base_url=base_url
    )
    base = base_url.rstrip("/")
    expected = [
        _reference_card(knowledge, f, hook_instance="hi-1", patient_id=patient_id, base=base)
        for f in fired
    ]
    # Byte for byte, key order included.
    assert orjson.dumps(wire) == orjson.dumps(expected)
    for card in wire:
        _no_empties(card, card["source"]["topic"]["code"])
        assert dump_model(Card.model_validate(card)) == card


def test_a_second_call_does_not_see_the_first_calls_patient(knowledge: Knowledge) -> None:
    """The static parts are shared between calls: a call must not write into them."""
    rule = next(r for r in knowledge.rules.values() if r.suggestions)
    args: dict[str, Any] = {"hook_instance": "h", "base_url": "http://x"}
    first = orjson.dumps(render_cards(knowledge, [_fired(rule)], patient_id="first", **args))
    second = orjson.dumps(render_cards(knowledge, [_fired(rule)], patient_id="second", **args))
    assert b"Patient/first" in first
    assert b"Patient/first" not in second
    assert b"Patient/second" in second


def test_call_result_gives_its_cards_and_its_validated_response(knowledge: Knowledge) -> None:
    fired = [_fired(rule) for rule in knowledge.rules.values()]
    wire = render_cards(knowledge, fired, hook_instance="h", patient_id="p", base_url="http://x")
    result = CallResult(fired=fired, not_evaluated={}, cards=wire)
    assert result.wire() == {"cards": wire}
    assert dump_model(result.response) == {"cards": wire}


_MARKDOWN_REFERENCE = {ord(c): "\\" + c for c in "\\`*_{}[]<>()#+!|~"} | {ord("\n"): " "}


def test_escape_markdown_escapes_each_special_character_like_a_translation_table() -> None:
    rnd = random.Random(7)
    alphabet = "\\`*_{}[]<>()#+!|~\n\r\t -.:/aZ9é😀"
    for _ in range(3000):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 40)))
        assert escape_markdown(text) == text.translate(_MARKDOWN_REFERENCE), repr(text)


def test_card_uuid_is_the_rfc_4122_name_based_sha1_uuid() -> None:
    rnd = random.Random(11)
    namespace = uuid.UUID("6f0c7a52-52a3-4c59-9d0b-3f1a2f1d7c11")
    alphabet = "abc-XYZ_09 é😀\x1f"
    for _ in range(3000):
        hook_instance, rule_id, part = (
            "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 20))) for _ in range(3)
        )
        expected = uuid.uuid5(namespace, f"{hook_instance}\x1f{rule_id}\x1f{part}")
        assert card_uuid(hook_instance, rule_id, part) == str(expected)
    assert card_uuid("h", "r") == str(uuid.uuid5(namespace, "h\x1fr\x1f"))
