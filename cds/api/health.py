"""Operational routes: liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from cds.api.openapi import outcome_responses
from cds.api.responses import FhirJSONResponse, JSONResponse
from cds.outcome import operation_outcome
from cds.runtime import Runtime

__all__ = ["router"]

router = APIRouter()


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    services: int
    rules: int


@router.get(
    "/healthz",
    summary="Liveness: the process answers",
    response_model=Liveness,
    response_class=JSONResponse,
    responses=outcome_responses(),
)
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    summary="Readiness: knowledge loaded and database reachable",
    response_model=Readiness,
    response_class=JSONResponse,
    responses=outcome_responses(503),
)
async def readyz(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    if runtime.store is not None:
        try:
            await asyncio.wait_for(asyncio.to_thread(runtime.store.ping), timeout=2)
        except Exception:  # any database failure means "not ready"; the reason is not exposed
            return FhirJSONResponse(
                operation_outcome("the database is not reachable", code="transient"),
                status_code=503,
            )
    return JSONResponse(
        {
            "status": "ready",
            "services": len(runtime.knowledge.services),
            "rules": len(runtime.knowledge.rules),
        }
    )
