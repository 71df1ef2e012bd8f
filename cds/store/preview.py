"""The preview page's own store: its cards and the feedback on them, in memory, apart from the
production card log and feedback tables.

A preview is a trial run on example (or uploaded) patients, so nothing it does may reach the
analytics, suppress a card for a real patient, or fill the database: the preview page calls
the services with this store, and the feedback route hands feedback on preview cards (and only
those) to it. It holds the last ``max_cards`` cards; older ones and their feedback are
forgotten. It lives as long as the process (one per worker).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from cds.protocol.wire import FeedbackItem
from cds.store.protocol import CallRecord, CardHistory, ShownCard, WithheldCard

__all__ = ["PreviewStore"]


def _utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class PreviewStore:
    """Implements :class:`~cds.store.protocol.Store` in memory, bounded; safe across threads."""

    def __init__(self, suppressing_reasons: Collection[str] = (), max_cards: int = 10_000) -> None:
        self.suppressing_reasons = frozenset(suppressing_reasons)
        self.max_cards = max_cards
        self._cards: OrderedDict[str, ShownCard] = OrderedDict()
        self._feedback: dict[str, list[FeedbackItem]] = {}
        self._lock = threading.Lock()

    def ping(self) -> None:
        """Always reachable."""

    def knows_all(self, card_uuids: Collection[str]) -> bool:
        """Whether every one of these cards was shown by the preview (and is still held)."""
        with self._lock:
            return bool(card_uuids) and all(uuid in self._cards for uuid in card_uuids)

    def record_cards(self, cards: Sequence[ShownCard]) -> None:
        with self._lock:
            for card in cards:
                self._cards[card.card_uuid] = card
            while len(self._cards) > self.max_cards:
                uuid, _ = self._cards.popitem(last=False)
                self._feedback.pop(uuid, None)

    def save_feedback(
        self, service_id: str, items: Sequence[FeedbackItem], received_at: datetime
    ) -> int:
        new = 0
        with self._lock:
            for item in items:
                if item.card not in self._cards:
                    continue
                held = self._feedback.setdefault(item.card, [])
                if item not in held:
                    held.append(item)
                    new += 1
        return new

    def feedback_for(self, card_uuid: str) -> list[FeedbackItem]:
        with self._lock:
            return list(self._feedback.get(card_uuid, ()))

    def suppressed_rules(
        self, patient_key: str, rule_ids: Collection[str], since: datetime
    ) -> set[str]:
        wanted = set(rule_ids)
        suppressed: set[str] = set()
        with self._lock:
            for uuid, items in self._feedback.items():
                card = self._cards.get(uuid)
                if card is None or card.patient_key != patient_key or card.rule_id not in wanted:
                    continue
                if any(self._suppresses(item, since) for item in items):
                    suppressed.add(card.rule_id)
        return suppressed

    def _suppresses(self, item: FeedbackItem, since: datetime) -> bool:
        reason = item.override_reason
        code = reason.reason.code if reason and reason.reason else None
        return (
            item.outcome == "overridden"
            and code in self.suppressing_reasons
            and _utc(item.outcome_timestamp) >= since
        )

    def card_history(
        self,
        patient_key: str,
        keys: Collection[str],
        shown_since: datetime,
        feedback_since: datetime,
    ) -> dict[str, CardHistory]:
        """None: a preview shows every card its rules give, each time (no repeat limits)."""
        return {}

    def record_call(self, call: CallRecord, withheld: Sequence[WithheldCard]) -> None:
        """Calls are not logged: the preview stays out of the burden report."""

    def close(self) -> None:
        with self._lock:
            self._cards.clear()
            self._feedback.clear()
