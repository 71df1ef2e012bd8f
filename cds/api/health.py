"""Operational routes: liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from cds.api.dependencies import RuntimeDep
from cds.api.openapi import outcome_responses
from cds.api.responses import FhirJSONResponse, JSONResponse
from cds.protocol.outcome import operation_outcome

__all__ = ["router"]

router = APIRouter()


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    services: int
    rules: int
    database: str  # the backend: sqlite, postgresql, or none


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
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    backend = runtime.settings.database_backend if runtime.store is not None else "none"
    if runtime.store is not None:
        try:
            # SQLite on a full or read-only disk still answers a read: the front's ping also
            # fails while the card log cannot be written.
            await asyncio.wait_for(asyncio.to_thread(runtime.store.ping), timeout=2)
            writing = True
        except Exception:  # any database failure means "not ready"; the reason is not exposed
            writing = False
        if not writing:
            return FhirJSONResponse(
                operation_outcome(
                    f"the {backend} database is not reachable or not writable", code="transient"
                ),
                status_code=503,
            )
    return JSONResponse(
        {
            "status": "ready",
            "services": len(runtime.knowledge.services),
            "rules": len(runtime.knowledge.rules),
            "database": backend,
        }
    )
