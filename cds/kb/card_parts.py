"""Each rule's card, compiled when the knowledge loads: every part that is the same for all calls.

A card holds the template's text, the source and its topic, the override reasons, the links
and the suggestions whatever the patient; a call adds only the uuids, the detail's facts and the
patient (:meth:`CompiledCard.fill`, called by :mod:`cds.call.render`). Compiling at load means
every card is checked against the :class:`~cds.protocol.wire.Card` model before the service
starts: a card the model refuses is a :class:`~cds.errors.KnowledgeError` naming the rule, not
a failed call.

URLs in a card start with the service's public base URL, a setting the knowledge does not know.
The parts are compiled once against a stand-in origin (:data:`BASE_STAND_IN`); :meth:`CardParts.at`
gives them at a real base URL, made once per base URL and kept on the :class:`CardParts`.

A merged card (the fired members of one finding, see :mod:`cds.call.findings`) depends on which
members fired: what each member brings is compiled per finding, and the merged card for one set
of members is put together on first use and kept too (a finding has few members).
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from cds.kb.code_systems import RULE_SYSTEM
from cds.kb.finding_relations import POPULATION_DEFINITIONS
from cds.kb.review import rule_is_reviewed
from cds.kb.schemas import (
    CardTemplate,
    Definition,
    EducationPage,
    Finding,
    OverrideReasonSpec,
    Rule,
    SuggestionSpec,
)
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
    "BASE_STAND_IN",
    "OVERRIDE_REASON_SYSTEM",
    "CardParts",
    "CardProblem",
    "CardsAtBase",
    "CompiledCard",
    "card_uuid",
    "compile_card_parts",
]

OVERRIDE_REASON_SYSTEM = "urn:cds:breast-cancer-followup:override-reason"
# The origin cards are compiled against. ``.invalid`` is reserved (RFC 2606): no real link
# points there, and the loader refuses knowledge that writes it (see _stand_in_problems).
BASE_STAND_IN = "https://cds-base.invalid"
_NAMESPACE_BYTES = uuid.UUID("6f0c7a52-52a3-4c59-9d0b-3f1a2f1d7c11").bytes
# Stands in for the patient while the static resource is pruned: keeps the key's position.
_PATIENT_SLOT = {"reference": "Patient/-"}
# Base URLs one CardParts keeps cards for: a service has one; tests use a few.
_BASES_KEPT = 16


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


@dataclass(frozen=True)
class SuggestionParts:
    """One suggestion as wire JSON, less its uuid; ``resource`` has the patient slots blank."""

    spec_id: str
    wire: dict[str, Any]  # the whole suggestion: uuid and actions are replaced per call
    action: dict[str, Any]  # the whole action: resource is replaced per call
    resource: dict[str, Any]  # pruned; subject/recipient (when present) are set per call
    resource_without_patient: dict[str, Any]  # pruned, as it goes out when there is no patient
    recipient: bool  # a CommunicationRequest: the patient is its recipient too

    def rebased(self, base: str) -> SuggestionParts:
        wire = _rebased(self.wire, base)
        action = wire["actions"][0]
        return dataclasses.replace(
            self,
            wire=wire,
            action=action,
            resource=action["resource"],
            resource_without_patient=_rebased(self.resource_without_patient, base),
        )


@dataclass(frozen=True)
class CompiledCard:
    """What a card holds whatever the patient, as wire JSON (pruned, camelCase).

    The nested dicts are shared between calls and must not be mutated.
    """

    summary: str
    indicator: str
    source: dict[str, Any]
    override_reasons: list[dict[str, Any]]
    links: list[dict[str, Any]]
    suggestions: list[SuggestionParts]
    detail_head: str  # the template's sentence(s): what to consider and why

    def fill(
        self, card_key: str, *, hook_instance: str, patient_id: str | None, detail: str
    ) -> dict[str, Any]:
        """The card of one call: its uuids, detail and patient added to the compiled parts."""
        card: dict[str, Any] = {
            "uuid": card_uuid(hook_instance, card_key),
            "summary": self.summary,
            "detail": detail,
            "indicator": self.indicator,
            "source": self.source,
        }
        if self.suggestions:
            suggestions = []
            for suggestion in self.suggestions:
                if patient_id:
                    resource = dict(suggestion.resource)
                    resource["subject"] = {"reference": f"Patient/{patient_id}"}
                    if suggestion.recipient:
                        resource["recipient"] = [{"reference": f"Patient/{patient_id}"}]
                else:
                    resource = suggestion.resource_without_patient
                # Keys assigned over the compiled ones keep their place: the model's wire order.
                wire = dict(suggestion.wire)
                wire["uuid"] = card_uuid(hook_instance, card_key, suggestion.spec_id)
                action = dict(suggestion.action)
                action["resource"] = resource
                wire["actions"] = [action]
                suggestions.append(wire)
            card["suggestions"] = suggestions
            card["selectionBehavior"] = "any"
        if self.override_reasons:
            card["overrideReasons"] = self.override_reasons
        if self.links:
            card["links"] = self.links
        return card

    def rebased(self, base: str) -> CompiledCard:
        return dataclasses.replace(
            self,
            source=_rebased(self.source, base),
            links=_rebased(self.links, base),
            suggestions=[s.rebased(base) for s in self.suggestions],
        )


@dataclass(frozen=True)
class _Member:
    """What one rule brings to its finding's merged card."""

    rule_id: str
    indicator: str
    override_reasons: tuple[str, ...]
    education: tuple[str, ...]
    why: dict[str, Any]  # its link, labelled with the rule's title
    why_alone: dict[str, Any]  # the same link when it is the card's only rule
    suggestions: list[SuggestionParts]  # ids prefixed with the rule's
    source_as_lead: dict[str, Any]  # the card's source when this rule leads it

    def rebased(self, base: str) -> _Member:
        return dataclasses.replace(
            self,
            why=_rebased(self.why, base),
            why_alone=_rebased(self.why_alone, base),
            suggestions=[s.rebased(base) for s in self.suggestions],
            source_as_lead=_rebased(self.source_as_lead, base),
        )


@dataclass(frozen=True)
class _FindingParts:
    summary: str
    detail_head: str
    members: dict[str, _Member]

    def rebased(self, base: str) -> _FindingParts:
        return dataclasses.replace(
            self, members={k: m.rebased(base) for k, m in self.members.items()}
        )


@dataclass
class CardsAtBase:
    """The compiled cards at one base URL: per rule, and merged per finding and fired members."""

    rules: dict[str, CompiledCard]
    _findings: dict[str, _FindingParts]
    _education: dict[str, dict[str, Any]]  # slug -> its link
    _reasons: dict[str, dict[str, Any]]  # code -> the override reason
    _merged: dict[tuple[str, ...], CompiledCard] = field(default_factory=dict)

    def merged(self, finding_id: str, rule_ids: tuple[str, ...]) -> CompiledCard:
        """The card for these fired members of the finding (the lead first)."""
        key = (finding_id, *rule_ids)
        card = self._merged.get(key)
        if card is None:
            card = _merge(self._findings[finding_id], rule_ids, self._education, self._reasons)
            self._merged[key] = card
        return card

    def rebased(self, base: str) -> CardsAtBase:
        return CardsAtBase(
            rules={k: c.rebased(base) for k, c in self.rules.items()},
            _findings={k: f.rebased(base) for k, f in self._findings.items()},
            _education=_rebased(self._education, base),
            _reasons=self._reasons,
        )


@dataclass
class CardParts:
    """Every rule's compiled card, kept on the :class:`~cds.kb.loader.Knowledge`."""

    compiled: CardsAtBase  # at BASE_STAND_IN
    # Labels the facts of the population definitions carry: a card lists them last.
    population_labels: frozenset[str]
    reviewed: frozenset[str]  # rules whose sign-off still matches their content
    _bases: dict[str, CardsAtBase] = field(default_factory=dict, repr=False)

    def at(self, base_url: str) -> CardsAtBase:
        """The cards with ``base_url`` (a trailing slash is dropped) in their URLs."""
        base = base_url.rstrip("/")
        cards = self._bases.get(base)
        if cards is None:
            cards = self.compiled.rebased(base)
            if len(self._bases) >= _BASES_KEPT:
                self._bases.clear()
            self._bases[base] = cards
        return cards


@dataclass(frozen=True)
class CardProblem:
    """A card that cannot be compiled: the rule's, or the finding's merged card."""

    rule_id: str | None
    finding_id: str | None
    message: str


def compile_card_parts(
    *,
    rules: Mapping[str, Rule],
    templates: Mapping[str, CardTemplate],
    education: Mapping[str, EducationPage],
    override_reasons: Mapping[str, OverrideReasonSpec],
    findings: Mapping[str, Finding],
    definition_docs: Mapping[str, Definition],
) -> tuple[CardParts, list[CardProblem]]:
    """Compile and check every card. References are assumed checked (the loader does that)."""
    problems: list[CardProblem] = []
    base = BASE_STAND_IN
    reviewed = frozenset(
        rule.id for rule in rules.values() if rule_is_reviewed(rule, templates[rule.card.template])
    )
    reasons: dict[str, dict[str, Any]] = {}  # code -> the override reason, as rules use them
    education_links = {
        slug: dump_model(
            Link(
                label=f"Patient page: {page.title}", url=f"{base}/education/{slug}", type="absolute"
            )
        )
        for slug, page in education.items()
    }
    cards: dict[str, CompiledCard] = {}
    for rule in rules.values():
        try:
            for code in rule.override_reasons:
                if code not in reasons:
                    reasons[code] = dump_model(
                        OverrideReason(
                            system=OVERRIDE_REASON_SYSTEM,
                            code=code,
                            display=override_reasons[code].display,
                        )
                    )
            card = _rule_card(rule, templates, reasons, education_links, reviewed, base)
            _check(card, rule.id)
        except (ValidationError, ValueError) as exc:
            problems.append(CardProblem(rule.id, None, _why(exc)))
            continue
        cards[rule.id] = card
    finding_parts: dict[str, _FindingParts] = {}
    for finding in findings.values():
        members = [
            r for r in rules.values() if r.finding is not None and r.finding.id == finding.id
        ]
        if any(r.id not in cards for r in members):
            continue  # a member's own card is refused: reported against its rule
        try:
            parts = _FindingParts(
                summary=templates[finding.template].summary,
                detail_head=templates[finding.template].detail.strip(),
                members={r.id: _member(r, finding, reviewed, base) for r in members},
            )
            if len(members) > 1:
                ids = tuple(r.id for r in members)
                _check(_merge(parts, ids, education_links, reasons), finding.id)
        except (ValidationError, ValueError) as exc:
            problems.append(CardProblem(None, finding.id, _why(exc)))
            continue
        finding_parts[finding.id] = parts
    problems += _stand_in_problems(rules, templates, education, override_reasons, findings)
    population = frozenset(
        definition_docs[name].description
        for name in POPULATION_DEFINITIONS
        if name in definition_docs
    )
    compiled = CardsAtBase(
        rules=cards, _findings=finding_parts, _education=education_links, _reasons=reasons
    )
    return CardParts(compiled, population_labels=population, reviewed=reviewed), problems


def _why(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        return f"fails the CDS Hooks Card model ({where}: {error['msg']})"
    return f"fails the CDS Hooks Card model ({exc})"


def _check(card: CompiledCard, key: str) -> None:
    """The whole card checked against the Card model, with stand-ins for what a call fills."""
    sample = card.fill(key, hook_instance="-", patient_id="-", detail="-")
    if dump_model(Card.model_validate(sample)) != sample:
        raise ValueError("it renders unlike the model")


def _source(rule: Rule, label: str, topic: Coding, reviewed: frozenset[str], base: str) -> Source:
    prefix = (
        "Breast cancer follow-up"
        if rule.id in reviewed
        else "Breast cancer follow-up (unreviewed rule)"
    )
    return Source(label=f"{prefix}: {label}"[:100], url=f"{base}/knowledge/{rule.id}", topic=topic)


def _why_link(rule: Rule, label: str, base: str) -> dict[str, Any]:
    return dump_model(Link(label=label[:120], url=f"{base}/knowledge/{rule.id}"))


def _suggestion(spec: SuggestionSpec, base: str) -> SuggestionParts:
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
    return SuggestionParts(
        spec_id=spec.id,
        wire=wire,
        action=action,
        resource=action["resource"],
        resource_without_patient=without_patient["actions"][0]["resource"],
        recipient=recipient,
    )


def _rule_card(
    rule: Rule,
    templates: Mapping[str, CardTemplate],
    reasons: Mapping[str, dict[str, Any]],
    education_links: Mapping[str, dict[str, Any]],
    reviewed: frozenset[str],
    base: str,
) -> CompiledCard:
    template = templates[rule.card.template]
    topic = Coding(system=RULE_SYSTEM, code=rule.id, display=rule.title)
    links = [education_links[slug] for slug in dict.fromkeys(rule.card.education)]
    links.append(_why_link(rule, "Why this rule (knowledge page)", base))
    return CompiledCard(
        summary=template.summary,
        indicator=rule.card.indicator,
        source=dump_model(_source(rule, rule.source.section, topic, reviewed, base)),
        override_reasons=[reasons[code] for code in rule.override_reasons],
        links=links,
        suggestions=[_suggestion(spec, base) for spec in rule.suggestions],
        detail_head=template.detail.strip(),
    )


def _member(rule: Rule, finding: Finding, reviewed: frozenset[str], base: str) -> _Member:
    topic = Coding(system=RULE_SYSTEM, code=finding.id, display=finding.title)
    return _Member(
        rule_id=rule.id,
        indicator=rule.card.indicator,
        override_reasons=rule.override_reasons,
        education=rule.card.education,
        why=_why_link(rule, f"Why: {rule.title}", base),
        why_alone=_why_link(rule, "Why this rule (knowledge page)", base),
        suggestions=[
            _suggestion(spec.model_copy(update={"id": f"{rule.id}-{spec.id}"}), base)
            for spec in rule.suggestions
        ],
        source_as_lead=dump_model(_source(rule, finding.title, topic, reviewed, base)),
    )


def _merge(
    finding: _FindingParts,
    rule_ids: Sequence[str],
    education_links: Mapping[str, dict[str, Any]],
    reasons: Mapping[str, dict[str, Any]],
) -> CompiledCard:
    """One card for the fired members of a finding: the finding's template, every member's
    suggestions (ids prefixed by the rule's), the override reasons all members offer."""
    members = [finding.members[rule_id] for rule_id in rule_ids]
    lead = members[0]
    slugs = dict.fromkeys(slug for member in members for slug in member.education)
    whys = [member.why for member in members] if len(members) > 1 else [lead.why_alone]
    return CompiledCard(
        summary=finding.summary,
        indicator=min((m.indicator for m in members), key=INDICATOR_RANK.__getitem__),
        source=lead.source_as_lead,
        override_reasons=[
            reasons[code]
            for code in lead.override_reasons
            if all(code in m.override_reasons for m in members)
        ],
        links=[*(education_links[slug] for slug in slugs), *whys],
        suggestions=[s for member in members for s in member.suggestions],
        detail_head=finding.detail_head,
    )


def _rebased(value: Any, base: str) -> Any:
    """``value`` with every BASE_STAND_IN replaced by ``base``; what holds none is shared."""
    if isinstance(value, str):
        return value.replace(BASE_STAND_IN, base) if BASE_STAND_IN in value else value
    if isinstance(value, dict):
        return {key: _rebased(item, base) for key, item in value.items()}
    if isinstance(value, list):
        return [_rebased(item, base) for item in value]
    return value


def _stand_in_problems(
    rules: Mapping[str, Rule],
    templates: Mapping[str, CardTemplate],
    education: Mapping[str, EducationPage],
    override_reasons: Mapping[str, OverrideReasonSpec],
    findings: Mapping[str, Finding],
) -> list[CardProblem]:
    """Text that holds the stand-in origin would have it replaced by the base URL."""
    marker = BASE_STAND_IN.encode()
    problems = [
        CardProblem(rule.id, None, f"{BASE_STAND_IN} is reserved for the service's base URL")
        for rule in rules.values()
        if marker
        in orjson.dumps(
            [
                rule.model_dump(mode="json"),
                templates[rule.card.template].model_dump(mode="json"),
                [education[slug].title for slug in rule.card.education],
                [override_reasons[code].display for code in rule.override_reasons],
            ]
        )
    ]
    problems += [
        CardProblem(None, finding.id, f"{BASE_STAND_IN} is reserved for the service's base URL")
        for finding in findings.values()
        if marker
        in orjson.dumps(
            [finding.model_dump(mode="json"), templates[finding.template].model_dump(mode="json")]
        )
    ]
    return problems
