"""Repeat intervals per indicator and per rule, decided from a patient's card history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cds.call.findings import CardFinding, resolve_findings
from cds.call.repeat_limits import apply_limits, repeat_interval
from cds.engine.evaluate import Evidence, Fired
from cds.kb.loader import Knowledge
from cds.store.protocol import CardHistory

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
FACT = Evidence("finding", "Condition", "c1", "Something", "2026-05-30")


def _card(knowledge: Knowledge, rule_id: str) -> CardFinding:
    (finding,) = resolve_findings([Fired(knowledge.rules[rule_id], (FACT,), ())], {})
    return finding


@pytest.mark.parametrize(
    ("rule_id", "hidden_for", "shown_after"),
    [
        ("mammogram-overdue-after-breast-cancer", timedelta(days=29), timedelta(days=30)),
        ("bone-pain-after-breast-cancer", timedelta(hours=23), timedelta(days=1)),
        ("when-to-call-education", timedelta(days=364), timedelta(days=365)),
    ],
    ids=["info-30-days", "warning-1-day", "education-yearly"],
)
def test_the_same_card_waits_its_interval(
    knowledge: Knowledge, rule_id: str, hidden_for: timedelta, shown_after: timedelta
) -> None:
    card = _card(knowledge, rule_id)
    for ago, shown in ((hidden_for, False), (shown_after, True)):
        history = {card.key: CardHistory(last_shown={card.fingerprint: NOW - ago})}
        limited = apply_limits([card], history, NOW)
        assert (limited.shown == [card]) is shown, ago
        if not shown:
            assert limited.withheld == [(card, "repeat")]


def test_a_critical_card_is_never_limited_nor_suppressed(knowledge: Knowledge) -> None:
    card = _card(knowledge, "back-pain-with-neurologic-signs")
    assert repeat_interval(card) is None
    history = {
        card.key: CardHistory(
            last_shown={card.fingerprint: NOW - timedelta(minutes=1)},
            suppressed=frozenset({card.fingerprint}),
        )
    }
    assert apply_limits([card], history, NOW).shown == [card]


def test_other_facts_show_the_card_again(knowledge: Knowledge) -> None:
    card = _card(knowledge, "mammogram-overdue-after-breast-cancer")
    history = {
        card.key: CardHistory(
            last_shown={"another-fingerprint": NOW - timedelta(minutes=1)},
            suppressed=frozenset({"another-fingerprint"}),
        )
    }
    assert apply_limits([card], history, NOW).shown == [card]


def test_suppression_holds_the_same_facts_only(knowledge: Knowledge) -> None:
    card = _card(knowledge, "bone-pain-after-breast-cancer")
    history = {card.key: CardHistory(last_shown={}, suppressed=frozenset({card.fingerprint}))}
    assert apply_limits([card], history, NOW).withheld == [(card, "suppressed")]
