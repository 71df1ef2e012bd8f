"""``GET /analytics/feedback``: per-rule feedback numbers as JSON (see :mod:`cds.analytics`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request

from cds.analytics import rule_feedback_stats
from cds.api.responses import JSONResponse
from cds.db import SqlStore
from cds.errors import BadRequest, ServiceUnavailable
from cds.runtime import Runtime

__all__ = ["DEFAULT_WINDOW", "parse_moment", "router"]

router = APIRouter()
DEFAULT_WINDOW = timedelta(days=30)


def parse_moment(value: str, name: str) -> datetime:
    """A date (``2026-01-01``, midnight UTC) or an RFC 3339 date-time; naive means UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"{name} must be a date (2026-01-01) or a date-time (2026-01-01T08:00:00Z)",
            expression=[name],
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@router.get("/analytics/feedback", summary="Per-rule cards shown, accepted and overridden")
async def feedback_analytics(
    request: Request, since: str | None = None, until: str | None = None
) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    end = parse_moment(until, "until") if until else datetime.now(UTC)
    start = parse_moment(since, "since") if since else end - DEFAULT_WINDOW
    if start >= end:
        raise BadRequest("since must be before until", expression=["since", "until"])
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
