"""Rule sign-off: a rule is reviewed when a named reviewer signed off on a date AND the hash
recorded then still matches the rule's logic and card content (see ``cds knowledge review``).
A rule edited after its review is unreviewed again until someone reviews it anew."""

from __future__ import annotations

import hashlib
import re
from datetime import date
from pathlib import Path

import orjson

from cds.kb.loader import Knowledge
from cds.kb.schemas import Rule

__all__ = ["content_hash", "is_reviewed", "review_block", "review_state", "write_review"]

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
    data = rule.model_dump(mode="json", include=set(_REVIEWED_FIELDS), by_alias=True)
    template = knowledge.templates.get(rule.card.template)
    data["template"] = template.model_dump(mode="json") if template else None
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def is_reviewed(knowledge: Knowledge, rule: Rule) -> bool:
    """Cached per knowledge and rule (both immutable): calls ask it for every fired rule."""
    key = (id(knowledge), id(rule))
    cached = _REVIEWED.get(key)
    if cached is not None and cached[0] is knowledge and cached[1] is rule:
        return cached[2]
    review = rule.review
    reviewed = bool(review.reviewed_by and review.reviewed_on and review.content_hash) and (
        review.content_hash == content_hash(knowledge, rule)
    )
    if len(_REVIEWED) >= 4096:
        _REVIEWED.clear()
    _REVIEWED[key] = (knowledge, rule, reviewed)
    return reviewed


_REVIEWED: dict[tuple[int, int], tuple[Knowledge, Rule, bool]] = {}


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
