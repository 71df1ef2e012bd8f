"""Rule sign-off: a rule is reviewed when a named reviewer signed off on a date AND the hash
recorded then still matches the rule's logic and card content (see ``cds knowledge review``).
A rule edited after its review is unreviewed again until someone reviews it anew."""

from __future__ import annotations

import hashlib
import re
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from cds.kb.schemas import CardTemplate, Rule

if TYPE_CHECKING:  # the loader compiles cards with rule_is_reviewed: no import back at run time
    from cds.kb.loader import Knowledge

__all__ = [
    "content_hash",
    "is_reviewed",
    "review_block",
    "review_state",
    "rule_is_reviewed",
    "write_review",
]

# What a reviewer signs off: what fires the card, what the card says and offers, how it
# relates to other cards. Titles, rationale wording, known gaps and the review itself are not.
_REVIEWED_FIELDS = (
    "hooks",
    "logic",
    "card",
    "suggestions",
    "override_reasons",
    "supersedes",
    "finding",
    "distinct_from",
    "mode",
    "repeat_interval",
    "repeat_resets_on",
)


def content_hash(knowledge: Knowledge, rule: Rule) -> str:
    return _content_hash(rule, knowledge.templates.get(rule.card.template))


def _content_hash(rule: Rule, template: CardTemplate | None) -> str:
    # Unset fields are left out, so that a new optional field or a newly registered fact kind
    # (cds.kb.fact_kinds) does not change the hash of rules that do not use it.
    data = rule.model_dump(
        mode="json", include=set(_REVIEWED_FIELDS), by_alias=True, exclude_none=True
    )
    data["template"] = template.model_dump(mode="json", exclude_none=True) if template else None
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def rule_is_reviewed(rule: Rule, template: CardTemplate | None) -> bool:
    review = rule.review
    return bool(review.reviewed_by and review.reviewed_on and review.content_hash) and (
        review.content_hash == _content_hash(rule, template)
    )


def is_reviewed(knowledge: Knowledge, rule: Rule) -> bool:
    """Read off the knowledge's compiled cards for its own rules (calls ask for every fired
    rule); worked out afresh for any other rule object."""
    if knowledge.rules.get(rule.id) is rule:
        return rule.id in knowledge.card_parts.reviewed
    return rule_is_reviewed(rule, knowledge.templates.get(rule.card.template))


def review_state(knowledge: Knowledge, rule: Rule) -> str:
    review = rule.review
    if is_reviewed(knowledge, rule):
        assert review.reviewed_on is not None
        return (
            f"reviewed by {review.reviewed_by} on {review.reviewed_on.isoformat()}"
            f" (v{review.version or rule.version})"
        )
    if review.reviewed_by:
        return "unreviewed (changed since its review)"
    return "unreviewed"


_REVIEW_BLOCK = re.compile(r"^review:[^\n]*\n(?:[ \t]+[^\n]*\n?|[ \t]*\n)*", re.MULTILINE)


def review_block(by: str, on: date, version: str, digest: str) -> str:
    return (
        "review:\n"
        f"  reviewed_by: {orjson.dumps(by).decode()}\n"
        f"  reviewed_on: {on.isoformat()}\n"
        f"  version: {version}\n"
        f"  content_hash: {digest}\n"
    )


def write_review(knowledge: Knowledge, rule: Rule, path: Path, by: str, on: date) -> str:
    """Sign ``rule`` off in its file: the ``review:`` block is replaced (or added at the end),
    nothing else in the file changes. Returns the content hash recorded."""
    digest = content_hash(knowledge, rule)
    block = review_block(by, on, rule.version, digest)
    text = path.read_text()
    if _REVIEW_BLOCK.search(text):
        text = _REVIEW_BLOCK.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n" + block
    path.write_text(text)
    return digest
