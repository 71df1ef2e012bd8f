"""What the service needs from its database, as a protocol (implemented in :mod:`cds.db`).

The engine and the call path depend on this protocol only, so tests and the CLI can run
without a database and the storage can change without touching them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cds.hooks import FeedbackItem

__all__ = ["ShownCard", "Store"]


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


class Store(Protocol):
    def ping(self) -> None:
        """Raise if the database cannot be reached."""

    def record_cards(self, cards: Sequence[ShownCard]) -> None:
        """Log cards we returned (idempotent on card uuid)."""

    def save_feedback(
        self, service_id: str, items: Sequence[FeedbackItem], received_at: datetime
    ) -> int:
        """Store feedback items durably (idempotent); return how many were new."""

    def suppressed_rules(
        self, patient_key: str, rule_ids: Collection[str], since: datetime
    ) -> set[str]:
        """Rules overridden for this patient with a suppressing reason since ``since``."""

    def close(self) -> None:
        """Release connections."""
