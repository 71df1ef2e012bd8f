"""Feedback analytics per rule: how often its cards were shown, accepted and overridden.

The time window selects cards by when they were shown (``since <= shown_at < until``); each
such card counts once, by the latest feedback reported for it (a card first accepted and later
overridden counts as overridden). Cards nobody reported on are neither (CDS Hooks clients do
not report ignored cards). The acceptance rate is accepted / shown.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, case, func, select

from cds.errors import BadRequest
from cds.store.sql import SqlStore, feedback, not_preview, shown_cards

__all__ = [
    "DEFAULT_WINDOW",
    "ReasonCount",
    "RuleFeedbackStats",
    "parse_moment",
    "report_window",
    "rule_feedback_stats",
]

DEFAULT_WINDOW = timedelta(days=30)

ReasonCount = tuple[str, str, int]  # (override reason code, its display, how many cards)


@dataclass(frozen=True)
class RuleFeedbackStats:
    rule_id: str
    rule_versions: tuple[str, ...]  # every version of the rule that showed a card
    shown: int
    accepted: int
    overridden: int
    acceptance_rate: float  # accepted / shown
    top_override_reasons: list[ReasonCount]  # most frequent first

    @property
    def rule_version(self) -> str:
        """The versions as one string, e.g. ``1.0.0, 1.1.0``."""
        return ", ".join(self.rule_versions)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rule_versions"] = list(self.rule_versions)
        data["top_override_reasons"] = [
            {"code": code, "display": display, "count": count}
            for code, display, count in self.top_override_reasons
        ]
        return data


def parse_moment(value: str, name: str) -> datetime:
    """A date (``2026-01-01``, midnight UTC) or an RFC 3339 date-time; naive means UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"{name} must be a date (2026-01-01) or a date-time (2026-01-01T08:00:00Z)",
            expression=[name],
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def report_window(since: str | None, until: str | None, now: datetime) -> tuple[datetime, datetime]:
    """The window of a report: ``until`` defaults to now, ``since`` to 30 days before it."""
    end = parse_moment(until, "until") if until else now
    start = parse_moment(since, "since") if since else end - DEFAULT_WINDOW
    if start >= end:
        raise BadRequest("since must be before until", expression=["since", "until"])
    return start, end


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def rule_feedback_stats(
    engine_or_store: Engine | SqlStore,
    since: datetime,
    until: datetime,
    *,
    top_reasons: int = 5,
) -> list[RuleFeedbackStats]:
    """Per-rule numbers for cards shown in ``[since, until)``, sorted by rule id."""
    engine = engine_or_store.engine if isinstance(engine_or_store, SqlStore) else engine_or_store
    in_window = and_(
        shown_cards.c.shown_at >= _utc(since),
        shown_cards.c.shown_at < _utc(until),
        not_preview(shown_cards.c.hook_instance),  # the preview's own calls are not feedback
    )
    cards_in_window = select(shown_cards.c.card_uuid).where(in_window)
    ranked = (
        select(
            feedback.c.card_uuid,
            feedback.c.outcome,
            feedback.c.override_code,
            feedback.c.override_display,
            func.row_number()
            .over(
                partition_by=feedback.c.card_uuid,
                order_by=(feedback.c.outcome_at.desc(), feedback.c.id.desc()),
            )
            .label("position"),
        )
        .where(feedback.c.card_uuid.in_(cards_in_window))
        .subquery()
    )
    latest = select(ranked).where(ranked.c.position == 1).subquery()
    joined = shown_cards.outerjoin(latest, latest.c.card_uuid == shown_cards.c.card_uuid)
    counts = (
        select(
            shown_cards.c.rule_id,
            func.count().label("shown"),
            func.count(case((latest.c.outcome == "accepted", 1))).label("accepted"),
            func.count(case((latest.c.outcome == "overridden", 1))).label("overridden"),
        )
        .select_from(joined)
        .where(in_window)
        .group_by(shown_cards.c.rule_id)
    )
    versions = select(shown_cards.c.rule_id, shown_cards.c.rule_version).where(in_window).distinct()
    reasons = (
        select(
            shown_cards.c.rule_id,
            latest.c.override_code,
            func.max(latest.c.override_display),
            func.count(),
        )
        .select_from(joined)
        .where(in_window, latest.c.outcome == "overridden", latest.c.override_code.is_not(None))
        .group_by(shown_cards.c.rule_id, latest.c.override_code)
    )
    with engine.connect() as connection:
        count_rows = connection.execute(counts).all()
        version_rows = connection.execute(versions).all()
        reason_rows = connection.execute(reasons).all()
    versions_of: dict[str, list[str]] = {}
    for rule_id, version in version_rows:
        versions_of.setdefault(rule_id, []).append(version)
    reasons_of: dict[str, list[ReasonCount]] = {}
    for rule_id, code, display, count in reason_rows:
        reasons_of.setdefault(rule_id, []).append((code, display or code, count))
    return [
        RuleFeedbackStats(
            rule_id=rule_id,
            rule_versions=tuple(sorted(versions_of.get(rule_id, []))),
            shown=shown,
            accepted=accepted,
            overridden=overridden,
            acceptance_rate=accepted / shown,
            top_override_reasons=sorted(reasons_of.get(rule_id, []), key=lambda r: (-r[2], r[0]))[
                :top_reasons
            ],
        )
        for rule_id, shown, accepted, overridden in sorted(count_rows)
    ]
