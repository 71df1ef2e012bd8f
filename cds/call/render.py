"""Turn fired rules into CDS Hooks cards, using the templates in ``cards/``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from cds.call.findings import CardFinding
from cds.engine.evaluate import Evidence, Fired
from cds.kb.loader import Knowledge
from cds.kb.schemas import Rule

__all__ = [
    "DETAIL_LIMIT",
    "escape_markdown",
    "fact_line",
    "render_cards",
    "render_findings",
]

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


def escape_markdown(text: str) -> str:
    """Data from the record is shown as text, never interpreted as markdown or HTML."""
    for special, escaped in _MARKDOWN_ESCAPES:
        if special in text:
            text = text.replace(special, escaped)
    return text.replace("\n", " ")


def render_findings(
    knowledge: Knowledge,
    findings: Iterable[CardFinding],
    *,
    hook_instance: str,
    patient_id: str | None,
    base_url: str,
) -> list[dict[str, Any]]:
    """One card per finding, as wire JSON: the compiled cards (:mod:`cds.kb.card_parts`) with
    this call's uuids, facts and patient. Nested parts are shared between calls: serialise
    them, never mutate them."""
    parts = knowledge.card_parts
    compiled = parts.at(base_url)
    cards = []
    for item in findings:
        if item.finding is not None:
            card = compiled.merged(item.finding.id, tuple(f.rule.id for f in item.fired))
            items = [f"- {m.rule.finding.item}" for m in item.fired if m.rule.finding is not None]
            detail = "\n".join([card.detail_head, "", *items])
        else:
            card = compiled.rules[item.lead.rule.id]
            detail = _detail(card.detail_head, item.lead, item.covers, parts.population_labels)
        cards.append(
            card.fill(item.key, hook_instance=hook_instance, patient_id=patient_id, detail=detail)
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
