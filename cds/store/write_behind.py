"""The hook call path's front to the database: no database round trip while an EHR waits.

- **Suppression** ("already addressed" overrides) is answered from an in-memory index of the
  suppressing feedback. It is loaded at start, refreshed from the database every
  ``CDS_SUPPRESSION_REFRESH_SECONDS`` (so feedback given through another worker or replica
  takes effect within that delay) and updated at once by feedback given through this process.
- **Shown cards** are queued and written by one background thread in batches, just after the
  response instead of before it. A crash can lose the last moments of the card log; feedback
  is still committed before its 2xx, and pending cards are written before any feedback is, so
  feedback always finds the card it is about.
- **A database outage** does not stop hook calls: cards that could not be written stay queued
  (at most ``max_pending``; beyond that the oldest are dropped and counted through
  ``on_drop``) and are written once the database answers again, tried every
  ``retry_seconds``. Meanwhile feedback fails at once with :class:`ServiceUnavailable` (a 503),
  since the cards it is about cannot be written before it, and :attr:`failing` is true.

Everything else (feedback, readiness, analytics) goes to the :class:`~cds.store.sql.SqlStore`
as before.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from cds.errors import ServiceUnavailable
from cds.logs import logger
from cds.protocol.wire import FeedbackItem
from cds.store.protocol import CallRecord, CardHistory, ShownCard, WithheldCard

if TYPE_CHECKING:
    from cds.store.sql import SqlStore

__all__ = ["CallStore"]

# Feedback rows are re-read this long after they were received, so a row whose card reached
# the database late, or whose replica's clock runs a little behind, is still picked up.
_REREAD_SECONDS = 120.0


_History = dict[str, dict[str, dict[str, datetime]]]


def _remember(index: _History, patient_key: str, key: str, fingerprint: str, at: datetime) -> None:
    prints = index.setdefault(patient_key, {}).setdefault(key, {})
    if fingerprint not in prints or at > prints[fingerprint]:
        prints[fingerprint] = at


def _pruned(index: _History, oldest: datetime) -> _History:
    """A copy without what is older than ``oldest`` (readers keep using the old one)."""
    out: _History = {}
    for patient_key, keys in index.items():
        for key, prints in keys.items():
            kept = {fp: at for fp, at in prints.items() if at >= oldest}
            if kept:
                out.setdefault(patient_key, {})[key] = kept
    return out


class CallStore:
    """Implements :class:`~cds.store.protocol.Store` over a :class:`~cds.store.sql.SqlStore`;
    start, then close."""

    def __init__(
        self,
        store: SqlStore,
        *,
        window_days: int,
        refresh_seconds: float,
        batch_size: int = 500,
        linger_seconds: float = 0.1,
        history_days: int = 366,
        max_pending: int = 20_000,
        retry_seconds: float = 1.0,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.window = timedelta(days=window_days)
        self.refresh_seconds = refresh_seconds
        self.batch_size = batch_size
        self.linger_seconds = linger_seconds
        self._queue: deque[ShownCard] = deque()
        self._queued = 0  # cards ever queued, and ever handled (written or dropped)
        self._handled = 0
        self._condition = threading.Condition()
        self._refresh_lock = threading.Lock()
        self._next_refresh = 0.0
        self._stopping = False
        self._flush_wanted = False
        self._thread: threading.Thread | None = None
        # Repeat limits (cds.call.repeat_limits): patient key -> card key -> fingerprint -> latest
        # shown, and the same for fingerprints dismissed with a suppressing reason.
        self.history = timedelta(days=history_days)
        self._shown: dict[str, dict[str, dict[str, datetime]]] = {}
        self._dismissed: dict[str, dict[str, dict[str, datetime]]] = {}
        self._history_read_since: datetime | None = None
        self._history_lock = threading.Lock()  # record_cards adds while a refresh copies
        self._events: deque[tuple[CallRecord, Sequence[WithheldCard]]] = deque()
        self._events_lock = threading.Lock()
        self.max_pending = max_pending
        self.retry_seconds = retry_seconds
        self._on_drop = on_drop
        self.failing = False  # the last card log write failed; cleared by the next success
        self.dropped = 0

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Load the card history (failures are logged, not fatal) and start the writer."""
        self._refresh_logged()
        self._thread = threading.Thread(target=self._run, name="cds-call-store", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Write what is queued, stop the writer. The wrapped store is closed by its owner."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self._write_pending()
        self._write_events()

    # --- the Store protocol -------------------------------------------------------------------

    def ping(self) -> None:
        """Raise if the database cannot be read, or while the card log cannot be written."""
        self.store.ping()
        if self.failing:
            raise ServiceUnavailable("the card log cannot be written")

    def card_history(
        self,
        patient_key: str,
        keys: Collection[str],
        shown_since: datetime,
        feedback_since: datetime,
    ) -> dict[str, CardHistory]:
        """From memory: safe to call on the event loop."""
        shown = self._shown.get(patient_key, {})
        dismissed = self._dismissed.get(patient_key, {})
        out: dict[str, CardHistory] = {}
        for key in keys:
            times = {fp: at for fp, at in shown.get(key, {}).items() if at >= shown_since}
            prints = frozenset(
                fp for fp, at in dismissed.get(key, {}).items() if at >= feedback_since
            )
            if times or prints:
                out[key] = CardHistory(last_shown=times, suppressed=prints)
        return out

    # --- the CallLog protocol: from memory, safe on the event loop --------------------------------

    keeps_history = True

    async def history_for(
        self,
        patient_key: str,
        keys: Collection[str],
        shown_since: datetime,
        feedback_since: datetime,
    ) -> dict[str, CardHistory]:
        return self.card_history(patient_key, keys, shown_since, feedback_since)

    async def log(
        self, shown: Sequence[ShownCard], call: CallRecord, withheld: Sequence[WithheldCard]
    ) -> None:
        """Queued: written just after the response."""
        self.record_cards(shown)
        self.record_call(call, withheld)

    def record_call(self, call: CallRecord, withheld: Sequence[WithheldCard]) -> None:
        """Queue for the writer thread: safe to call on the event loop."""
        with self._condition:
            self._events.append((call, withheld))

    def record_cards(self, cards: Sequence[ShownCard]) -> None:
        """Queue for the writer thread: safe to call on the event loop."""
        if not cards:
            return
        for card in cards:  # this process knows at once; other replicas at their next refresh
            if card.patient_key and card.fingerprint:
                _remember(
                    self._shown, card.patient_key, card.rule_id, card.fingerprint, card.shown_at
                )
        with self._condition:
            self._queue.extend(cards)
            self._queued += len(cards)
            self._drop_overflow()
            if len(self._queue) >= self.batch_size and not self.failing:
                self._condition.notify_all()

    def save_feedback(
        self, service_id: str, items: Sequence[FeedbackItem], received_at: datetime
    ) -> int:
        """Blocking: queued cards first, then the feedback, then the card history.

        Raises :class:`ServiceUnavailable` while the card log cannot be written."""
        from sqlalchemy.exc import SQLAlchemyError

        self.flush()
        if self.failing:
            self._write_pending()  # the database may be back before the writer's next try
        if self.failing:
            raise ServiceUnavailable("the database is not reachable; the feedback was not stored")
        try:
            stored = self.store.save_feedback(service_id, items, received_at)
        except SQLAlchemyError:
            raise ServiceUnavailable(
                "the database is not reachable; the feedback was not stored"
            ) from None
        self._refresh_logged()
        return stored

    # --- the writer thread ----------------------------------------------------------------------

    def flush(self, timeout: float = 30.0) -> None:
        """Block until every card queued before this call has been handled (not on the loop)."""
        with self._condition:
            target = self._queued
            self._flush_wanted = True
            self._condition.notify_all()
            if self._thread is None or not self._thread.is_alive():
                waited = False
            else:
                waited = self._condition.wait_for(
                    lambda: self._handled >= target or self.failing, timeout
                )
        if not waited:
            self._write_pending()
        self._write_events()  # calls and withheld cards queued before this flush

    def _run(self) -> None:
        while True:
            # A call does not wake this thread: waking it hands it the GIL in the middle of
            # the calls. It looks every ``linger_seconds`` and writes what gathered, at once.
            with self._condition:
                linger = self.retry_seconds if self.failing else self.linger_seconds
                self._condition.wait_for(
                    lambda: (
                        self._stopping
                        or self._flush_wanted
                        or (len(self._queue) >= self.batch_size and not self.failing)
                    ),
                    timeout=max(0.0, min(linger, self._next_refresh - time.monotonic())),
                )
                if self._stopping and (not self._queue or self.failing):
                    return
                self._flush_wanted = False
            self._write_pending()
            self._write_events()
            if time.monotonic() >= self._next_refresh:
                self._refresh_logged()

    def _write_pending(self) -> None:
        while True:
            with self._condition:
                batch = [
                    self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))
                ]
            if not batch:
                return
            try:
                self.store.record_cards(batch)
            except Exception as exc:  # the database is down: keep the cards, keep serving
                with self._condition:
                    if not self.failing:
                        logger.error(
                            "card log write failed; cards are kept and retried",
                            extra={"fields": {"error": type(exc).__name__}},
                        )
                    self.failing = True
                    self._queue.extendleft(reversed(batch))
                    self._drop_overflow()
                    self._condition.notify_all()
                return
            with self._condition:
                if self.failing:
                    logger.info("card log writes resumed", extra={"fields": {}})
                self.failing = False
                self._handled += len(batch)
                self._condition.notify_all()

    def _write_events(self) -> None:
        # One writer at a time: a flush that finds the queue empty has waited for the batch
        # another thread took to be committed.
        with self._events_lock:
            self._write_events_locked()

    def _write_events_locked(self) -> None:
        while True:
            with self._condition:
                batch = [
                    self._events.popleft() for _ in range(min(self.batch_size, len(self._events)))
                ]
            if not batch:
                return
            try:
                self.store.record_calls(batch)
            except Exception as exc:  # the database is down: log the loss, keep serving
                logger.error(
                    "call log write failed",
                    extra={"fields": {"error": type(exc).__name__, "calls": len(batch)}},
                )

    def _drop_overflow(self) -> None:
        """Drop the oldest queued cards beyond ``max_pending`` (the condition is held)."""
        excess = len(self._queue) - self.max_pending
        if excess <= 0:
            return
        for _ in range(excess):
            self._queue.popleft()
        self._handled += excess
        self.dropped += excess
        if self._on_drop is not None:
            self._on_drop(excess)

    # --- the card history ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the cards shown and dismissed since the last read, from every replica
        (blocking; not on the loop)."""
        with self._refresh_lock:
            started = datetime.now(UTC)
            self._next_refresh = time.monotonic() + self.refresh_seconds
            oldest = started - self.history
            reread = timedelta(seconds=_REREAD_SECONDS)
            last = self._history_read_since
            shown_rows = self.store.shown_fingerprints(oldest if last is None else last - reread)
            dismissed_rows = self.store.dismissed_fingerprints(
                started - self.window, None if last is None else last - reread
            )
            with self._history_lock:
                fresh_shown = _pruned(self._shown, oldest)
                for patient_key, key, fingerprint, at in shown_rows:
                    _remember(fresh_shown, patient_key, key, fingerprint, at)
                self._shown = fresh_shown
            fresh_dismissed = _pruned(self._dismissed, started - self.window)
            for patient_key, key, fingerprint, at in dismissed_rows:
                _remember(fresh_dismissed, patient_key, key, fingerprint, at)
            self._dismissed = fresh_dismissed
            self._history_read_since = started

    def _refresh_logged(self) -> None:
        try:
            self.refresh()
        except Exception as exc:  # keep the last index; the next refresh tries again
            logger.error(
                "card history refresh failed", extra={"fields": {"error": type(exc).__name__}}
            )
