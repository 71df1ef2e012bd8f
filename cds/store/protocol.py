"""What the service needs from its database, as a protocol (implemented in :mod:`cds.store.sql`).

The engine and the call path depend on this protocol only, so tests and the CLI can run
without a database and the storage can change without touching them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cds.protocol.wire import FeedbackItem

__all__ = [
    "PREVIEW_PREFIX",
    "CallLog",
    "CallRecord",
    "CardHistory",
    "ShownCard",
    "Store",
    "WithheldCard",
]

# The preview page's calls carry hookInstance "preview-<uuid>" (cds.web.preview): they are
# left out of the analytics, the burden report and the patient's card history.
PREVIEW_PREFIX = "preview-"


@dataclass(frozen=True)
class ShownCard:
    """One card we returned: joins later feedback back to the rule that produced it."""

    card_uuid: str
    service_id: str
    rule_id: str
    rule_version: str
    hook: str
    hook_instance: str
    indicator: str
    patient_key: str | None  # keyed hash of the patient id, never the id itself
    shown_at: datetime
    fingerprint: str | None = None  # of the facts that fired it (cds.call.findings.fingerprint)


@dataclass(frozen=True)
class WithheldCard:
    """A card a call produced but did not return, and why (silent, repeat, suppressed)."""

    service_id: str
    rule_id: str  # the card key: a rule id or a finding id
    rule_version: str
    hook: str
    hook_instance: str
    indicator: str
    patient_key: str | None
    fingerprint: str | None
    reason: str
    at: datetime


@dataclass(frozen=True)
class CallRecord:
    """One service call and how many cards it returned: the burden report's denominator."""

    hook_instance: str
    service_id: str
    hook: str
    patient_key: str | None
    cards: int
    called_at: datetime


@dataclass(frozen=True)
class CardHistory:
    """What a patient has seen of one card: when each set of facts was last shown, and the
    sets of facts a clinician dismissed with a suppressing reason (critical cards excluded)."""

    last_shown: dict[str, datetime]  # fingerprint -> latest shown
    suppressed: frozenset[str] = frozenset()  # fingerprints


class Store(Protocol):
    def ping(self) -> None:
        """Raise if the database cannot be reached."""

    def record_cards(self, cards: Sequence[ShownCard]) -> None:
        """Log cards we returned (idempotent on card uuid)."""

    def save_feedback(
        self, service_id: str, items: Sequence[FeedbackItem], received_at: datetime
    ) -> int:
        """Store feedback items durably (idempotent); return how many were new."""

    def card_history(
        self,
        patient_key: str,
        keys: Collection[str],
        shown_since: datetime,
        feedback_since: datetime,
    ) -> dict[str, CardHistory]:
        """Per card key: its shown fingerprints since ``shown_since`` and its suppressed ones
        (feedback since ``feedback_since``). Keys never shown are left out."""

    def record_call(self, call: CallRecord, withheld: Sequence[WithheldCard]) -> None:
        """Log a call and the cards it withheld (may be written after the response)."""

    def close(self) -> None:
        """Release connections."""


class CallLog(Protocol):
    """What one hook call needs of the database, awaited on the event loop: the patient's card
    history (for repeat limits) and a place to log what the call showed and withheld.

    Implemented by the write-behind front (:class:`~cds.store.write_behind.CallStore`: memory
    only), by :class:`~cds.store.call_log.StoreCallLog` over any :class:`Store` (a thread per
    query), by the preview's store, and by :data:`~cds.store.call_log.NO_CALL_LOG` when there
    is no database (CLI, rule cases).
    """

    @property
    def keeps_history(self) -> bool:
        """Whether repeat limits apply: False where no history is kept (nothing is held back)."""

    async def history_for(
        self,
        patient_key: str,
        keys: Collection[str],
        shown_since: datetime,
        feedback_since: datetime,
    ) -> dict[str, CardHistory]:
        """As :meth:`Store.card_history`."""

    async def log(
        self, shown: Sequence[ShownCard], call: CallRecord, withheld: Sequence[WithheldCard]
    ) -> None:
        """Log the cards a call returned, the call, and the cards it withheld."""
