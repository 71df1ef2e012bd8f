"""Operational routes: liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from cds.api.responses import FhirJSONResponse, JSONResponse
from cds.outcome import operation_outcome
from cds.runtime import Runtime

__all__ = ["router"]

router = APIRouter()


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", summary="Readiness: knowledge loaded and database reachable")
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
