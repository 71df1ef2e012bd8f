"""``GET /analytics/feedback``: per-rule feedback numbers as JSON (see :mod:`cds.analytics`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import APIRouter, Request

from cds.analytics import report_window, rule_feedback_stats
from cds.api.responses import JSONResponse
from cds.db import SqlStore
from cds.errors import ServiceUnavailable
from cds.runtime import Runtime

__all__ = ["router"]

router = APIRouter()


@router.get("/analytics/feedback", summary="Per-rule cards shown, accepted and overridden")
async def feedback_analytics(
    request: Request, since: str | None = None, until: str | None = None
) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    start, end = report_window(since, until, datetime.now(UTC))
    if not isinstance(runtime.store, SqlStore):
        raise ServiceUnavailable("feedback analytics need the database")
    stats = await asyncio.to_thread(rule_feedback_stats, runtime.store, start, end)
    return JSONResponse(
        {
            "since": start.isoformat(),
            "until": end.isoformat(),
            "rules": [row.as_json() for row in stats],
        }
    )
