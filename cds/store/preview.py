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
from datetime import datetime

from cds.protocol.wire import FeedbackItem
from cds.store.protocol import CallRecord, CardHistory, ShownCard, WithheldCard

__all__ = ["PreviewStore"]


class PreviewStore:
    """Implements :class:`~cds.store.protocol.Store` in memory, bounded; safe across threads."""

    def __init__(self, max_cards: int = 10_000) -> None:
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

    # The CallLog protocol: the preview shows every card its rules give, each time.
    keeps_history = False

    async def history_for(
        self,
        patient_key: str,
        keys: Collection[str],
        shown_since: datetime,
        feedback_since: datetime,
    ) -> dict[str, CardHistory]:
        return {}

    async def log(
        self, shown: Sequence[ShownCard], call: CallRecord, withheld: Sequence[WithheldCard]
    ) -> None:
        """Its cards only, so that feedback on them is accepted; calls stay out of the burden
        report."""
        self.record_cards(shown)

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
