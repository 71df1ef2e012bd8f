"""Whether each rule's cases pass right now, computed once per process and kept.

Knowledge is loaded once at start-up and never changes while the process runs, so a case's
result cannot change either; the first visit to a rule's page pays for running its cases.
"""

from __future__ import annotations

import threading

from cds.call.rule_cases import CaseResult, run_case
from cds.kb.loader import Knowledge
from cds.settings import Settings

__all__ = ["CaseStatusCache"]


class CaseStatusCache:
    """Per-rule case results. ``results`` blocks (runs the cases): call it off the event loop."""

    def __init__(self, knowledge: Knowledge, settings: Settings) -> None:
        self.knowledge = knowledge
        self.settings = settings
        self._results: dict[str, tuple[CaseResult, ...]] = {}
        self._lock = threading.Lock()

    def results(self, rule_id: str) -> tuple[CaseResult, ...]:
        with self._lock:
            cached = self._results.get(rule_id)
            if cached is None:
                rule = self.knowledge.rules[rule_id]
                cached = tuple(
                    run_case(self.knowledge, rule, case, self.settings)
                    for case in self.knowledge.cases.get(rule_id, ())
                )
                self._results[rule_id] = cached
            return cached

    def cached(self, rule_id: str) -> tuple[CaseResult, ...] | None:
        """The results if they were computed already (never runs anything)."""
        return self._results.get(rule_id)
