"""The feedback page's window (since/until dates) and its table and chart rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from cds.errors import BadRequest
from cds.kb.loader import Knowledge
from cds.store.analytics import RuleFeedbackStats
from cds.web.charts import BarChart, grouped_bar_chart

__all__ = [
    "DEFAULT_DAYS",
    "SERIES",
    "SERIES_COLOURS",
    "FeedbackRow",
    "Window",
    "feedback_chart",
    "feedback_rows",
    "parse_window",
]

DEFAULT_DAYS = 30
SERIES = ("shown", "accepted", "overridden")
SERIES_COLOURS = {"shown": "#5b6b7c", "accepted": "#1d6b34", "overridden": "#b3261e"}


@dataclass(frozen=True)
class Window:
    """Cards shown from the start of ``first_day`` to the end of ``last_day`` (UTC)."""

    first_day: date
    last_day: date

    @property
    def since(self) -> datetime:
        return datetime.combine(self.first_day, time.min, tzinfo=UTC)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.last_day + timedelta(days=1), time.min, tzinfo=UTC)


def _day(text: str, field: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{field} is not a date (YYYY-MM-DD): {text[:20]!r}") from None


def parse_window(since: str, until: str, today: date) -> Window:
    """The window from the form's text; defaults to the last 30 days, today included."""
    last = _day(until, "until") or today
    first = _day(since, "since") or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise BadRequest("since must be on or before until")
    return Window(first, last)


@dataclass(frozen=True)
class FeedbackRow:
    stats: RuleFeedbackStats
    title: str | None
    reasons: tuple[tuple[str, int], ...] = ()  # (override reason as we word it, count)

    @property
    def acceptance_percent(self) -> str:
        return f"{self.stats.acceptance_rate * 100:.0f}%"


def _reason_display(knowledge: Knowledge, code: str, display: str) -> str:
    """Our own wording of an override reason of ours, even when the EHR sent only the code
    (as the CDS Hooks Sandbox does); another EHR's reason keeps what it sent."""
    ours = knowledge.override_reasons.get(code)
    return ours.display if ours is not None else display


def feedback_rows(knowledge: Knowledge, stats: list[RuleFeedbackStats]) -> list[FeedbackRow]:
    return [
        FeedbackRow(
            s,
            knowledge.rules[s.rule_id].title if s.rule_id in knowledge.rules else None,
            tuple(
                (_reason_display(knowledge, code, display), count)
                for code, display, count in s.top_override_reasons
            ),
        )
        for s in stats
    ]


def feedback_chart(rows: list[FeedbackRow], window: Window) -> BarChart:
    return grouped_bar_chart(
        [
            (
                row.title or row.stats.rule_id,
                [row.stats.shown, row.stats.accepted, row.stats.overridden],
            )
            for row in rows
        ],
        SERIES,
        description=(
            f"Cards shown, accepted and overridden per rule from {window.first_day.isoformat()} "
            f"to {window.last_day.isoformat()}"
        ),
    )
