"""The application factory: routes, the error-to-HTTP mapping (the only one), and lifespan."""

from __future__ import annotations

import hashlib
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cds import __version__
from cds.api import analytics_routes, api_docs, health, hooks_routes, pages
from cds.api import metrics as metrics_routes
from cds.api.client_auth import authenticate_client
from cds.api.hook_fast_path import HookCallEndpoint, ServiceApp
from cds.api.openapi import install_openapi
from cds.api.responses import FhirJSONResponse
from cds.engine import units
from cds.errors import RequestError
from cds.fhir.transport import AiohttpTransport
from cds.kb.loader import Knowledge, load_knowledge
from cds.logs import configure_logging, logger
from cds.metrics import MeasuredTransport
from cds.protocol.outcome import operation_outcome
from cds.runtime import Runtime
from cds.settings import Settings, load_settings
from cds.store.call_log import NO_CALL_LOG, StoreCallLog
from cds.store.preview import PreviewStore
from cds.store.protocol import Store
from cds.store.sql import SqlStore, open_store
from cds.store.write_behind import CallStore
from cds.trust.clients import TrustedClient, configured_trusted_clients
from cds.trust.key_sets import JwksCache
from cds.trust.tokens import ClientVerifier, MemoryReplayCache, ReplayCache

__all__ = ["OPERATOR_PAGES", "create_app", "knowledge_version", "request_error_response"]

_HTTP_CODES = {404: "not-found", 405: "not-supported", 401: "login", 403: "forbidden"}
# The operator's pages, served only with CDS_PAGES on. The education and knowledge pages (and
# their stylesheet) stay: every card links to them.
OPERATOR_PAGES = frozenset({"/", "/preview", "/analytics", "/analytics/feedback"})


def create_app(
    settings: Settings | None = None,
    *,
    knowledge: Knowledge | None = None,
    store: Store | None = None,
    use_database: bool = True,
) -> FastAPI:
    """Build the app. Knowledge is loaded (and validated) here, so bad knowledge fails start-up."""
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    knowledge = knowledge or load_knowledge(
        settings.knowledge_dir, settings.cards_dir, site_terminology=settings.terminology_dir
    )
    suppressing = [c for c, r in knowledge.override_reasons.items() if r.suppresses]
    runtime = Runtime(
        settings=settings,
        knowledge=knowledge,
        store=store,
        preview_store=PreviewStore(),
    )
    trusted = configured_trusted_clients(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        units.warm()  # the UCUM registry, built once per process, not in the first call
        opened = runtime.store
        if opened is None and use_database:
            opened = open_store(settings, suppressing)
        # The composition root: the one place that tells the SQL store from others. With the
        # SQL store, calls and feedback go through its write-behind front.
        runtime.database = opened if isinstance(opened, SqlStore) else None
        front: CallStore | None = None
        if runtime.database is not None:
            front = CallStore(
                runtime.database,
                window_days=settings.suppression_days,
                refresh_seconds=settings.suppression_refresh_seconds,
                on_drop=runtime.metrics.card_log_dropped.inc,
            )
            front.start()
            runtime.store, runtime.call_log = front, front
        elif opened is not None:
            runtime.store, runtime.call_log = opened, StoreCallLog(opened)
        runtime.fhir_transport = MeasuredTransport(
            AiohttpTransport(max_connections=100), runtime.metrics
        )
        jwks_http: httpx.AsyncClient | None = None
        if trusted is not None:
            jwks_http = httpx.AsyncClient(follow_redirects=False)
            runtime.verifier = _verifier(settings, trusted, jwks_http, runtime.database)
        logger.info("started", extra={"fields": _start_fields(runtime, store=runtime.store)})
        try:
            yield
        finally:
            logger.info("stopping", extra={"fields": {"version": __version__}})
            await runtime.fhir_transport.aclose()
            if jwks_http is not None:
                await jwks_http.aclose()
            if front is not None:
                front.close()  # writes what is queued
            runtime.store, runtime.call_log = opened, NO_CALL_LOG
            if opened is not None:
                opened.close()
            logger.info("stopped", extra={"fields": {"version": __version__}})

    app = ServiceApp(
        title="Breast cancer follow-up CDS Hooks service",
        version=__version__,
        description="CDS Hooks 2.0.1 service: follow-up cards and patient education for "
        "patients with a history of breast cancer.",
        lifespan=lifespan,
        default_response_class=FhirJSONResponse,
        docs_url=None,  # FastAPI's pages load from a CDN; cds.api.api_docs serves them offline
        redoc_url=None,
        # POST /cds-services/x/ is a 404, not a 307 with an empty body a client may not follow.
        redirect_slashes=False,
    )
    app.state.runtime = runtime
    install_openapi(app)  # errors as OperationOutcomes, parsed bodies, the client JWT
    # Every CDS Hooks route, discovery included, authenticates the client (see client_auth).
    app.include_router(hooks_routes.router, dependencies=[Depends(authenticate_client)])
    app.include_router(health.router)
    app.include_router(_pages_router(pages.router, settings.pages))
    app.include_router(api_docs.router)
    if settings.pages:
        app.include_router(analytics_routes.router)
    if settings.metrics_enabled:
        app.include_router(metrics_routes.router)
    # One middleware list for both paths: FastAPI's stack, and the hook calls it never sees
    # (they skip its routing; see hook_fast_path), in the same order.
    middleware = _middleware(settings, runtime)
    for layer in reversed(middleware):
        app.add_middleware(layer.cls, *layer.args, **layer.kwargs)
    app.hook_calls = _wrapped(HookCallEndpoint(on_error=request_error_response), middleware)
    _install_error_handlers(app)
    return app


def _pages_router(router: APIRouter, operator_pages: bool) -> APIRouter:
    """The page routes, less the operator's pages when ``CDS_PAGES`` is off."""
    if operator_pages:
        return router
    kept = APIRouter()
    kept.routes.extend(
        route for route in router.routes if getattr(route, "path", None) not in OPERATOR_PAGES
    )
    return kept


def knowledge_version(knowledge: Knowledge) -> str:
    """A short digest of every rule's id and version: two services with the same value serve
    the same rules."""
    text = "\n".join(
        f"{rule_id}@{rule.version}" for rule_id, rule in sorted(knowledge.rules.items())
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _start_fields(runtime: Runtime, *, store: Store | None) -> dict[str, Any]:
    settings = runtime.settings
    return {
        "version": __version__,
        "knowledgeVersion": knowledge_version(runtime.knowledge),
        "rules": len(runtime.knowledge.rules),
        "database": settings.database_backend if store is not None else "none",
        "url": settings.public_base_url,
        "pages": settings.pages,
        "metrics": settings.metrics_enabled,
    }


def _middleware(settings: Settings, runtime: Runtime) -> list[Middleware]:
    """Outermost first: CORS (when configured; outside the error guard, so that a 500 keeps
    its CORS headers), the last-resort error guard, then request metrics (when enabled)."""
    layers = []
    if settings.cors_origin_list:
        layers.append(Middleware(CORSMiddleware, **_cors_options(settings)))
    layers.append(Middleware(_ContainUnexpectedErrors))
    if settings.metrics_enabled:
        layers.append(Middleware(metrics_routes.RequestMetricsMiddleware, runtime=runtime))
    return layers


def _wrapped(app: ASGIApp, middleware: list[Middleware]) -> ASGIApp:
    """``app`` inside ``middleware`` (outermost first), as Starlette would build it."""
    for layer in reversed(middleware):
        app = layer.cls(app, *layer.args, **layer.kwargs)
    return app


def _cors_options(settings: Settings) -> dict[str, Any]:
    return {
        "allow_origins": settings.cors_origin_list,
        "allow_methods": ["GET", "POST", "OPTIONS"],
        "allow_headers": ["Authorization", "Content-Type"],
        "max_age": 600,
    }


class _ContainUnexpectedErrors:
    """An unexpected exception becomes a 500 OperationOutcome here, and goes no further.

    Starlette's last-resort handler re-raises after answering so that the server logs the
    traceback, and exception messages can carry request data (patient ids, resource content).
    Here only the exception's class and where it was raised are logged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_noting_start(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_noting_start)
        except Exception as exc:
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            where = f"{Path(frame.filename).name}:{frame.lineno}"
            logger.error(
                "unhandled error", extra={"fields": {"error": type(exc).__name__, "where": where}}
            )
            if not started:
                response = FhirJSONResponse(
                    operation_outcome("internal error", code="exception"), status_code=500
                )
                await response(scope, receive, send)


def _verifier(
    settings: Settings,
    trusted: dict[str, TrustedClient],
    http: httpx.AsyncClient,
    store: Store | None,
) -> ClientVerifier:
    # The database replay cache is shared by all replicas; without a database, per process.
    replay: ReplayCache = store if isinstance(store, ReplayCache) else MemoryReplayCache()
    keys = JwksCache(
        http,
        min_refresh_seconds=settings.jwks_min_refresh_seconds,
        max_age_seconds=settings.jwks_max_age_seconds,
    )
    return ClientVerifier(
        trusted,
        keys,
        replay,
        leeway_seconds=settings.jwt_leeway_seconds,
        max_lifetime_seconds=settings.jwt_max_lifetime_seconds,
    )


def request_error_response(exc: RequestError) -> FhirJSONResponse:
    """A client error as its HTTP answer: status and OperationOutcome."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return FhirJSONResponse(
        operation_outcome(exc.diagnostics, code=exc.code, expression=exc.expression),
        status_code=exc.status,
        headers=headers,
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def request_error(_: Request, exc: RequestError) -> FhirJSONResponse:
        return request_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> FhirJSONResponse:
        where = [".".join(str(p) for p in e["loc"]) for e in exc.errors()[:10]]
        return FhirJSONResponse(
            operation_outcome("invalid request: " + "; ".join(where), expression=where),
            status_code=400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> FhirJSONResponse:
        return FhirJSONResponse(
            operation_outcome(str(exc.detail), code=_HTTP_CODES.get(exc.status_code, "processing")),
            status_code=exc.status_code,
            headers=exc.headers,
        )
