"""The call log of a call without the write-behind front: over a plain store, or none at all."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from datetime import datetime

from cds.store.protocol import CallRecord, CardHistory, ShownCard, Store, WithheldCard

__all__ = ["NO_CALL_LOG", "NoCallLog", "StoreCallLog"]


class NoCallLog:
    """No database: no history (every card shows), nothing logged."""

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
        return None


NO_CALL_LOG = NoCallLog()


class StoreCallLog:
    """Any :class:`~cds.store.protocol.Store`, its blocking calls run in a worker thread (the
    burden panel over a SQL store; stores that tests pass in)."""

    keeps_history = True

    def __init__(self, store: Store) -> None:
        self.store = store

    async def history_for(
        self,
        patient_key: str,
        keys: Collection[str],
        shown_since: datetime,
        feedback_since: datetime,
    ) -> dict[str, CardHistory]:
        return await asyncio.to_thread(
            self.store.card_history, patient_key, keys, shown_since, feedback_since
        )

    async def log(
        self, shown: Sequence[ShownCard], call: CallRecord, withheld: Sequence[WithheldCard]
    ) -> None:
        await asyncio.to_thread(self.store.record_cards, shown)
        await asyncio.to_thread(self.store.record_call, call, withheld)
