"""HTTP side of the metrics: a cheap ASGI middleware that times CDS Hooks requests, and
``GET /metrics`` in the Prometheus text format (when ``CDS_METRICS_ENABLED``)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cds.api.dependencies import RuntimeDep, route_path
from cds.api.openapi import outcome_responses
from cds.metrics import CONTENT_TYPE
from cds.runtime import Runtime

__all__ = ["RequestMetricsMiddleware", "router"]

router = APIRouter()
_PREFIX = "/cds-services"


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=PlainTextResponse,
    responses=outcome_responses(),
)
async def metrics(runtime: RuntimeDep) -> Response:
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE)


def _route_of(path: str) -> tuple[str, str | None]:
    """(route kind, service id) of a path under /cds-services."""
    rest = path[len(_PREFIX) :].strip("/")
    if not rest:
        return "discovery", None
    service_id, _, tail = rest.partition("/")
    return ("feedback" if tail == "feedback" else "service"), service_id


class RequestMetricsMiddleware:
    """Counts and times every CDS Hooks request; reads cards and fetch errors of a call from
    ``request.state.call_result`` (set by the service route). Other paths pass straight by."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope)
        if (
            scope["type"] != "http"
            or scope["method"] == "OPTIONS"
            or not (path == _PREFIX or path.startswith(_PREFIX + "/"))
        ):
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            self._record(path, status, time.perf_counter() - started, state)

    def _record(self, path: str, status: int, seconds: float, state: dict[str, Any]) -> None:
        metrics = self.runtime.metrics
        route, service_id = _route_of(path)
        service = self.runtime.knowledge.services.get(service_id) if service_id else None
        service_label = service.spec.id if service else ("" if route == "discovery" else "unknown")
        hook = service.spec.hook if service else ""
        metrics.requests.labels(route, service_label, hook, str(status)).inc()
        metrics.latency.labels(route, service_label).observe(seconds)
        result = state.get("call_result")
        if result is not None:
            metrics.record_cards(
                [
                    (fired.rule.id, card["indicator"])
                    for fired, card in zip(result.fired, result.cards, strict=False)
                ]
            )
            metrics.record_fetch_errors(result.fetch_errors)
