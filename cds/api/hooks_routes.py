"""The CDS Hooks routes: discovery, service calls and feedback."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError

from cds.api.body import read_json
from cds.api.dependencies import RuntimeDep
from cds.api.openapi import SECURITY, json_request_body, outcome_responses
from cds.api.responses import JSONResponse
from cds.call.service_call import run_service
from cds.errors import BadRequest, RequestError, UnknownService
from cds.kb.loader import Service
from cds.logs import log_call
from cds.protocol.wire import (
    CdsResponse,
    DiscoveryResponse,
    FeedbackRequest,
    HookRequest,
    ServiceDescriptor,
    dump_model,
)
from cds.runtime import Runtime
from cds.store.protocol import Store

__all__ = ["FeedbackReceipt", "discovery_document", "router", "validation_message"]

router = APIRouter()
SPEC_VERSION = "2.0.1"


class FeedbackReceipt(BaseModel):
    """The answer to a feedback post: items received, and how many were new (not stored before)."""

    received: int
    new: int


def validation_message(exc: ValidationError, what: str) -> BadRequest:
    """A 400 naming each bad field; never echoes the submitted values (they may be PHI)."""
    errors = exc.errors(include_input=False, include_url=False)[:10]
    paths = [".".join(str(p) for p in err["loc"]) for err in errors]
    problems = [
        f"{path or '(body)'}: {err['msg']}" for path, err in zip(paths, errors, strict=True)
    ]
    return BadRequest(
        f"invalid {what}: " + "; ".join(problems),
        expression=[path for path in paths if path],  # the body itself has no expression
    )


def discovery_document(services: dict[str, Service]) -> DiscoveryResponse:
    return DiscoveryResponse(
        services=[
            ServiceDescriptor(
                hook=service.spec.hook,
                id=service.spec.id,
                title=service.spec.title,
                description=service.spec.description,
                prefetch=service.prefetch.templates(),
                version=SPEC_VERSION,
            )
            for service in services.values()
        ]
    )


@router.get(
    "/cds-services",
    response_model=DiscoveryResponse,
    response_model_exclude_none=True,
    response_class=JSONResponse,
    summary="CDS Hooks discovery",
    responses=outcome_responses(401),
    openapi_extra=SECURITY,
)
async def discovery(request: Request, runtime: RuntimeDep) -> JSONResponse:
    document = getattr(request.app.state, "discovery", None)
    if document is None:
        document = dump_model(discovery_document(runtime.knowledge.services))
        request.app.state.discovery = document
    return JSONResponse(document)


def _service(runtime: Runtime, service_id: str) -> Service:
    service = runtime.knowledge.services.get(service_id)
    if service is None:
        raise UnknownService(f"no CDS service with id {service_id!r}", expression=["id"])
    return service


@router.post(
    "/cds-services/{service_id}",
    response_model=CdsResponse,
    response_class=JSONResponse,
    summary="Call a CDS service",
    responses=outcome_responses(400, 401, 404, 412, 413, 415),
    openapi_extra=json_request_body(HookRequest),
)
async def call_service(service_id: str, request: Request, runtime: RuntimeDep) -> JSONResponse:
    started = time.perf_counter()
    # A made-up id is not logged: the path is the caller's text, of any length.
    known = service_id in runtime.knowledge.services
    fields: dict[str, Any] = {"service": service_id if known else "unknown"}
    status = 500
    try:
        service = _service(runtime, service_id)
        body = await read_json(request, runtime.settings.max_body_bytes)
        try:
            hook_request = HookRequest.model_validate(body)
        except ValidationError as exc:
            raise validation_message(exc, "CDS Hooks request") from None
        fields.update(hook=hook_request.hook, hookInstance=hook_request.hook_instance[:64])
        result = await run_service(
            service,
            hook_request,
            knowledge=runtime.knowledge,
            settings=runtime.settings,
            fhir_transport=runtime.fhir_transport,
            now=datetime.now(UTC),
            call_log=runtime.call_log,
        )
        status = 200
        fields.update(
            cards=len(result.cards),
            rules=[f.rule.id for f in result.fired],
            fetched=result.fetched,
            fetchErrors=result.fetch_errors,
            skippedResources=result.skipped_resources,
        )
        request.state.call_result = result
        return JSONResponse(result.wire())
    except RequestError as exc:
        status = exc.status
        fields["error"] = type(exc).__name__
        raise
    finally:
        fields.update(status=status, durationMs=round((time.perf_counter() - started) * 1000, 2))
        log_call(**fields)


@router.post(
    "/cds-services/{service_id}/feedback",
    response_model=FeedbackReceipt,
    response_class=JSONResponse,
    summary="Report what the clinician did with cards",
    responses=outcome_responses(400, 401, 404, 413, 415),
    openapi_extra=json_request_body(FeedbackRequest),
)
async def post_feedback(service_id: str, request: Request, runtime: RuntimeDep) -> JSONResponse:
    _service(runtime, service_id)
    body = await read_json(request, runtime.settings.max_body_bytes)
    try:
        feedback = FeedbackRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_message(exc, "feedback") from None
    stored = 0
    store: Store | None = runtime.store
    if runtime.preview_store.knows_all([item.card for item in feedback.feedback]):
        store = runtime.preview_store  # feedback on the preview page's cards stays with them
    if store is not None:
        stored = await asyncio.to_thread(
            store.save_feedback, service_id, feedback.feedback, datetime.now(UTC)
        )
    log_call(
        event="feedback", service=service_id, items=len(feedback.feedback), new=stored, status=200
    )
    return JSONResponse({"received": len(feedback.feedback), "new": stored})
