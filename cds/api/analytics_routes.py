"""``GET /analytics/feedback``: per-rule feedback numbers as JSON (:mod:`cds.store.analytics`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel

from cds.api.dependencies import RuntimeDep
from cds.api.openapi import outcome_responses
from cds.api.responses import JSONResponse
from cds.errors import ServiceUnavailable
from cds.store.analytics import report_window, rule_feedback_stats

__all__ = ["FeedbackReport", "router"]

router = APIRouter()


class OverrideReasonCount(BaseModel):
    code: str
    display: str
    count: int


class RuleFeedback(BaseModel):
    """One rule's numbers (:meth:`cds.store.analytics.RuleFeedbackStats.as_json`)."""

    rule_id: str
    rule_versions: list[str]
    shown: int
    accepted: int
    overridden: int
    acceptance_rate: float
    top_override_reasons: list[OverrideReasonCount]


class FeedbackReport(BaseModel):
    since: str
    until: str
    rules: list[RuleFeedback]


@router.get(
    "/analytics/feedback",
    summary="Per-rule cards shown, accepted and overridden",
    response_model=FeedbackReport,
    response_class=JSONResponse,
    responses=outcome_responses(400, 503),
)
async def feedback_analytics(
    runtime: RuntimeDep, since: str | None = None, until: str | None = None
) -> JSONResponse:
    start, end = report_window(since, until, datetime.now(UTC))
    if runtime.database is None:
        raise ServiceUnavailable("feedback analytics need the database")
    stats = await asyncio.to_thread(rule_feedback_stats, runtime.database, start, end)
    return JSONResponse(
        {
            "since": start.isoformat(),
            "until": end.isoformat(),
            "rules": [row.as_json() for row in stats],
        }
    )
