"""Prometheus metrics of one service process.

Labels carry only bounded, non-identifying values: route kind, service id and hook (from the
knowledge, "unknown" otherwise), HTTP status, rule id, indicator, error kinds and JWT
rejection reasons. Never a patient, user, token, card uuid or hookInstance.

Each app owns its registry, so several apps in one process (tests) do not collide.

With several workers (``cds serve --workers N``) the counters live in prometheus-client's
multiprocess files (``PROMETHEUS_MULTIPROC_DIR``, set by ``cds serve`` before the workers
start), and a scrape answered by any worker sums every worker's counters. Process metrics
(``process_*``: memory, CPU, open files) are those of the process that answers the scrape.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
import time
from collections.abc import Sequence

import httpx
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["CONTENT_TYPE", "MeasuredTransport", "Metrics", "use_multiprocess_metrics"]

_MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def use_multiprocess_metrics() -> str:
    """Point worker processes started after this call at one fresh multiprocess directory
    (removed when this process exits); returns it. prometheus-client reads the variable when
    a worker imports it, so it must be set before the workers start."""
    directory = os.environ.get(_MULTIPROCESS_DIR)
    if not directory:
        directory = tempfile.mkdtemp(prefix="cds-metrics-")
        os.environ[_MULTIPROCESS_DIR] = directory
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


# The classic text format every scraper understands (what prometheus-client's own server sends).
CONTENT_TYPE: str = CONTENT_TYPE_PLAIN_0_0_4

disable_created_metrics()  # type: ignore[no-untyped-call]  # `_created` series are noise

# Around the 500 ms the CDS Hooks spec asks for, with room on both sides.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cds_requests",
            "CDS Hooks requests by route (discovery, service, feedback), service, hook, status.",
            ["route", "service", "hook", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cds_request_duration_seconds",
            "Time to answer a CDS Hooks request, by route and service.",
            ["route", "service"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.cards = Counter(
            "cds_cards",
            "Cards returned, by rule and indicator.",
            ["rule", "indicator"],
            registry=self.registry,
        )
        self.fhir_latency = Histogram(
            "cds_fhir_request_duration_seconds",
            "Time until the FHIR server's response headers (or failure), per HTTP request.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.fhir_requests = Counter(
            "cds_fhir_requests",
            "HTTP requests to FHIR servers by outcome: 2xx..5xx, timeout, cancelled or network.",
            ["outcome"],
            registry=self.registry,
        )
        self.fhir_errors = Counter(
            "cds_fhir_fetch_errors",
            "Prefetch keys the FHIR server could not give us in answered calls, by kind.",
            ["kind"],
            registry=self.registry,
        )
        # Memory, CPU and open files of this process (Linux /proc), kept apart: with several
        # workers the multiprocess files hold counters and histograms only.
        self._process = CollectorRegistry()
        ProcessCollector(registry=self._process)
        self.card_log_dropped = Counter(
            "cds_card_log_dropped",
            "Shown cards left out of the card log: the database was down and the buffer full.",
            registry=self.registry,
        )
        self.jwt_rejections = Counter(
            "cds_jwt_rejections",
            "Requests refused with 401, by reason.",
            ["reason"],
            registry=self.registry,
        )

    def record_cards(self, rule_indicators: Sequence[tuple[str, str]]) -> None:
        for rule_id, indicator in rule_indicators:
            self.cards.labels(rule_id, indicator).inc()

    def record_fetch_errors(self, kinds: Sequence[str]) -> None:
        for kind in kinds:
            self.fhir_errors.labels(kind).inc()

    def render(self) -> bytes:
        """The text exposition format: every worker's counters, this process's process_*."""
        registry = self.registry
        if os.environ.get(_MULTIPROCESS_DIR):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry) + generate_latest(self._process)


class MeasuredTransport(httpx.AsyncBaseTransport):
    """Wraps the FHIR client's transport: times every request and counts how it ended, also
    for calls that end in 412 (whose per-key errors never reach a call result)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        outcome = "network"
        try:
            response = await self._inner.handle_async_request(request)
            outcome = f"{response.status_code // 100}xx"
            return response
        except httpx.TimeoutException:
            outcome = "timeout"
            raise
        except asyncio.CancelledError:  # the call's FHIR time budget ran out
            outcome = "cancelled"
            raise
        finally:
            self._metrics.fhir_latency.observe(time.perf_counter() - started)
            self._metrics.fhir_requests.labels(outcome).inc()

    async def aclose(self) -> None:
        await self._inner.aclose()
