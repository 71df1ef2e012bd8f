"""The call logs a hook call can be given: none (no database), or any store through a thread."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from cds.protocol.wire import FeedbackItem
from cds.store.call_log import NO_CALL_LOG, StoreCallLog
from cds.store.protocol import CallRecord, CardHistory, ShownCard, WithheldCard

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CALL = CallRecord(
    hook_instance="h", service_id="s", hook="patient-view", patient_key="pk", cards=1, called_at=NOW
)
SHOWN = ShownCard(
    card_uuid="u",
    service_id="s",
    rule_id="r",
    rule_version="1",
    hook="patient-view",
    hook_instance="h",
    indicator="info",
    patient_key="pk",
    shown_at=NOW,
    fingerprint="fp",
)


class ListStore:
    def __init__(self) -> None:
        self.cards: list[ShownCard] = []
        self.calls: list[CallRecord] = []

    def ping(self) -> None:
        return None

    def record_cards(self, cards: Sequence[ShownCard]) -> None:
        self.cards.extend(cards)

    def save_feedback(
        self, service_id: str, items: Sequence[FeedbackItem], received_at: datetime
    ) -> int:
        return 0

    def card_history(
        self,
        patient_key: str,
        keys: Collection[str],
        shown_since: datetime,
        feedback_since: datetime,
    ) -> dict[str, CardHistory]:
        return {
            card.rule_id: CardHistory(last_shown={card.fingerprint or "": card.shown_at})
            for card in self.cards
            if card.patient_key == patient_key and card.rule_id in keys
        }

    def record_call(self, call: CallRecord, withheld: Sequence[WithheldCard]) -> None:
        self.calls.append(call)

    def close(self) -> None:
        return None


def test_no_call_log_keeps_no_history_and_logs_nothing() -> None:
    assert not NO_CALL_LOG.keeps_history
    asyncio.run(NO_CALL_LOG.log([SHOWN], CALL, []))
    assert asyncio.run(NO_CALL_LOG.history_for("pk", ["r"], NOW, NOW)) == {}


def test_a_store_call_log_writes_to_and_reads_from_its_store() -> None:
    store = ListStore()
    log = StoreCallLog(store)
    assert log.keeps_history
    asyncio.run(log.log([SHOWN], CALL, []))
    assert (store.cards, store.calls) == ([SHOWN], [CALL])
    history = asyncio.run(log.history_for("pk", ["r"], NOW, NOW))
    assert history == {"r": CardHistory(last_shown={"fp": NOW})}
    assert asyncio.run(log.history_for("other", ["r"], NOW, NOW)) == {}
