"""Prometheus metrics of one service process.

Labels carry only bounded, non-identifying values: route kind, service id and hook (from the
knowledge, "unknown" otherwise), HTTP status, rule id, indicator, error kinds and JWT
rejection reasons. Never a patient, user, token, card uuid or hookInstance.

Each app owns its registry, so several apps in one process (tests) do not collide.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

import httpx
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest

__all__ = ["CONTENT_TYPE", "Metrics", "fhir_timing_hooks"]

CONTENT_TYPE: str = CONTENT_TYPE_LATEST

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
            "Time until the FHIR server's response headers, per HTTP request we make to it.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.fhir_errors = Counter(
            "cds_fhir_fetch_errors",
            "Prefetch keys the FHIR server could not give us, by kind of failure.",
            ["kind"],
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
        """The text exposition format."""
        return generate_latest(self.registry)


def fhir_timing_hooks(metrics: Metrics) -> dict[str, list[Callable[..., Awaitable[None]]]]:
    """httpx event hooks that time each request to a FHIR server (to its response headers)."""

    async def on_request(request: httpx.Request) -> None:
        request.extensions["cds_started"] = time.perf_counter()

    async def on_response(response: httpx.Response) -> None:
        started = response.request.extensions.get("cds_started")
        if isinstance(started, float):
            metrics.fhir_latency.observe(time.perf_counter() - started)

    return {"request": [on_request], "response": [on_response]}
