"""Alert burden from the database: how many cards clinicians saw per chart open, per card and
indicator, what was withheld and why, and how cards were answered, for a time window.

Read by `cds report burden`, the analytics page and the panel run (:mod:`cds.call.burden_panel`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, case, func, select

from cds.protocol.wire import INDICATOR_RANK
from cds.store.sql import feedback, hook_calls, not_preview, shown_cards, withheld_cards

__all__ = [
    "OWNER_REASONS",
    "BurdenReport",
    "BurdenRow",
    "HookBurden",
    "burden_report",
    "format_burden",
]

# Override reasons the rule's owners need to hear about: the rule may be wrong.
OWNER_REASONS = ("not-clinically-relevant", "data-incorrect")


@dataclass(frozen=True)
class BurdenRow:
    """One card (a rule's, or a finding's merged card) on one hook."""

    hook: str
    card: str
    indicator: str
    shown: int
    per_100_calls: float
    repeats_prevented: int
    suppressed: int
    silent: int
    overridden: int
    not_relevant: int
    data_incorrect: int

    @property
    def override_rate(self) -> float:
        return self.overridden / self.shown if self.shown else 0.0


@dataclass(frozen=True)
class HookBurden:
    hook: str
    calls: int
    cards: int
    max_cards: int

    @property
    def mean_cards(self) -> float:
        return self.cards / self.calls if self.calls else 0.0


@dataclass
class BurdenReport:
    since: datetime
    until: datetime
    hooks: list[HookBurden] = field(default_factory=list)
    rows: list[BurdenRow] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "hooks": [{**h.__dict__, "mean_cards": round(h.mean_cards, 3)} for h in self.hooks],
            "cards": [
                {**r.__dict__, "override_rate": round(r.override_rate, 3)} for r in self.rows
            ],
        }


def burden_report(engine: Engine, since: datetime, until: datetime) -> BurdenReport:
    """The burden of the calls in ``[since, until)``, the preview's own calls left out."""
    calls_in = and_(
        hook_calls.c.called_at >= since,
        hook_calls.c.called_at < until,
        not_preview(hook_calls.c.hook_instance),
    )
    shown_in = and_(
        shown_cards.c.shown_at >= since,
        shown_cards.c.shown_at < until,
        not_preview(shown_cards.c.hook_instance),
    )
    held_in = and_(
        withheld_cards.c.at >= since,
        withheld_cards.c.at < until,
        not_preview(withheld_cards.c.hook_instance),
    )
    per_hook = (
        select(
            hook_calls.c.hook,
            func.count(),
            func.coalesce(func.sum(hook_calls.c.cards), 0),
            func.coalesce(func.max(hook_calls.c.cards), 0),
        )
        .where(calls_in)
        .group_by(hook_calls.c.hook)
    )
    # Each card counts once, by its latest feedback.
    latest = (
        select(
            feedback.c.card_uuid,
            feedback.c.outcome,
            feedback.c.override_code,
            func.row_number()
            .over(
                partition_by=feedback.c.card_uuid,
                order_by=(feedback.c.outcome_at.desc(), feedback.c.id.desc()),
            )
            .label("position"),
        )
        .where(feedback.c.card_uuid.in_(select(shown_cards.c.card_uuid).where(shown_in)))
        .subquery()
    )
    last = select(latest).where(latest.c.position == 1).subquery()
    overridden = last.c.outcome == "overridden"
    shown = (
        select(
            shown_cards.c.hook,
            shown_cards.c.rule_id,
            shown_cards.c.indicator,
            func.count(),
            func.count(case((overridden, 1))),
            func.count(case((and_(overridden, last.c.override_code == OWNER_REASONS[0]), 1))),
            func.count(case((and_(overridden, last.c.override_code == OWNER_REASONS[1]), 1))),
        )
        .select_from(shown_cards.outerjoin(last, last.c.card_uuid == shown_cards.c.card_uuid))
        .where(shown_in)
        .group_by(shown_cards.c.hook, shown_cards.c.rule_id, shown_cards.c.indicator)
    )
    held = (
        select(
            withheld_cards.c.hook,
            withheld_cards.c.rule_id,
            withheld_cards.c.indicator,
            withheld_cards.c.reason,
            func.count(),
        )
        .where(held_in)
        .group_by(
            withheld_cards.c.hook,
            withheld_cards.c.rule_id,
            withheld_cards.c.indicator,
            withheld_cards.c.reason,
        )
    )
    with engine.connect() as connection:
        hook_rows = connection.execute(per_hook).all()
        shown_rows = connection.execute(shown).all()
        held_rows = connection.execute(held).all()
    report = BurdenReport(since=since, until=until)
    calls = {hook: n for hook, n, _, _ in hook_rows}
    report.hooks = sorted(
        (HookBurden(hook, n, int(total), int(most)) for hook, n, total, most in hook_rows),
        key=lambda h: h.hook,
    )
    counts: dict[tuple[str, str, str], dict[str, int]] = {}
    for hook, card, indicator, n, over, not_relevant, incorrect in shown_rows:
        entry = counts.setdefault((hook, card, indicator), {})
        entry.update(shown=n, overridden=over, not_relevant=not_relevant, data_incorrect=incorrect)
    for hook, card, indicator, reason, n in held_rows:
        counts.setdefault((hook, card, indicator), {})[reason] = n
    for (hook, card, indicator), entry in sorted(
        counts.items(), key=lambda item: (item[0][0], INDICATOR_RANK.get(item[0][2], 9), item[0][1])
    ):
        n = entry.get("shown", 0)
        report.rows.append(
            BurdenRow(
                hook=hook,
                card=card,
                indicator=indicator,
                shown=n,
                per_100_calls=100 * n / calls[hook] if calls.get(hook) else 0.0,
                repeats_prevented=entry.get("repeat", 0),
                suppressed=entry.get("suppressed", 0),
                silent=entry.get("silent", 0),
                overridden=entry.get("overridden", 0),
                not_relevant=entry.get("not_relevant", 0),
                data_incorrect=entry.get("data_incorrect", 0),
            )
        )
    return report


def format_burden(report: BurdenReport) -> str:
    lines = [f"calls from {report.since.isoformat()} until {report.until.isoformat()}", ""]
    if not report.hooks:
        return "\n".join([*lines, "no calls in this window"])
    table: list[tuple[str, ...]] = [("hook", "calls", "cards", "mean/call", "max/call")]
    table += [
        (h.hook, str(h.calls), str(h.cards), f"{h.mean_cards:.2f}", str(h.max_cards))
        for h in report.hooks
    ]
    lines += [*_aligned(table), ""]
    table = [
        (
            "hook",
            "card",
            "indicator",
            "shown",
            "per 100",
            "repeats",
            "suppressed",
            "silent",
            "override %",
            "not relevant",
            "data incorrect",
        )
    ]
    table += [
        (
            r.hook,
            r.card,
            r.indicator,
            str(r.shown),
            f"{r.per_100_calls:.1f}",
            str(r.repeats_prevented),
            str(r.suppressed),
            str(r.silent),
            f"{r.override_rate * 100:.0f}",
            str(r.not_relevant),
            str(r.data_incorrect),
        )
        for r in report.rows
    ]
    return "\n".join(lines + _aligned(table))


def _aligned(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


# --- the offline panel ------------------------------------------------------------------------
