"""The OpenAPI document: every route's request, answer and errors as they really are.

FastAPI describes a route's 200 from its response model. The rest is declared with the helpers
here, because the routes read their bodies themselves (size cap, orjson) and :mod:`cds.app`
turns every error into a FHIR OperationOutcome sent as ``application/fhir+json``:

- :func:`outcome_responses` the error statuses of a route (and ``default``: an unexpected 500);
- :func:`html_responses` the pages' HTML answers;
- :func:`json_request_body` a body read by :func:`cds.api.body.read_json`;
- :func:`install_openapi` adds the body and error models to the document's components, and the
  optional client JWT as a security scheme.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from cds.protocol.wire import HOOKS, FeedbackRequest, HookRequest

__all__ = [
    "FHIR_JSON",
    "SECURITY",
    "OperationOutcome",
    "html_responses",
    "install_openapi",
    "json_request_body",
    "merge_responses",
    "outcome_responses",
    "text_responses",
]

FHIR_JSON = "application/fhir+json"
_REF = "#/components/schemas/{model}"
_JWT_SCHEME = "clientJwt"
# The CDS Hooks routes take a client JWT; it is optional unless CDS_REQUIRE_JWT is on.
SECURITY: dict[str, Any] = {"security": [{_JWT_SCHEME: []}, {}]}

_WHY: dict[int, str] = {
    400: "The body or a parameter is malformed (not JSON, wrong shape, missing field).",
    401: "A client JWT is missing (when required) or not valid. Says only 'unauthorized'.",
    404: "No such service, rule or page.",
    412: "Data the service needs was neither prefetched nor fetchable from the FHIR server.",
    413: "The body is larger than CDS_MAX_BODY_BYTES.",
    415: "The body is not sent as application/json or application/fhir+json.",
    503: "A part the route needs (the database) is not available.",
}


class OutcomeIssue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    severity: Literal["fatal", "error", "warning", "information"]
    code: str = Field(min_length=1)
    diagnostics: str = Field(min_length=1)
    expression: list[str] | None = Field(None, min_length=1)


class OperationOutcome(BaseModel):
    """The body of every non-2xx JSON answer (FHIR R4 OperationOutcome, the fields we send)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    resource_type: Literal["OperationOutcome"] = Field(alias="resourceType")
    issue: list[OutcomeIssue] = Field(min_length=1)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def outcome_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``statuses`` (and ``default``, an unexpected error) as OperationOutcome answers."""
    content = {FHIR_JSON: {"schema": _ref(OperationOutcome)}}
    responses: dict[int | str, dict[str, Any]] = {
        status: {"description": _WHY[status], "content": content} for status in statuses
    }
    responses["default"] = {"description": "Unexpected error (500, no detail).", "content": content}
    return responses


def html_responses(statuses: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """Page answers by status (with what each means): ``text/html``."""
    content = {"text/html": {"schema": {"type": "string"}}}
    return {status: {"description": why, "content": content} for status, why in statuses.items()}


def text_responses(status: int, why: str, *media_types: str) -> dict[int | str, dict[str, Any]]:
    """A text answer (CSS, JavaScript, the metrics exposition) in one of ``media_types``."""
    content = {media_type: {"schema": {"type": "string"}} for media_type in media_types}
    return {status: {"description": why, "content": content}}


def merge_responses(*parts: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """One responses mapping; a status declared twice offers the media types of both."""
    merged: dict[int | str, dict[str, Any]] = {}
    for part in parts:
        for status, response in part.items():
            if status not in merged:
                merged[status] = {**response, "content": dict(response["content"])}
            else:
                merged[status]["content"].update(response["content"])
    return merged


def json_request_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route whose JSON body (either JSON media type) is ``model``."""
    schema = {"schema": _ref(model)}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": schema, FHIR_JSON: schema},
        },
        **SECURITY,
    }


_COMPONENT_MODELS: tuple[type[BaseModel], ...] = (HookRequest, FeedbackRequest, OperationOutcome)


def _component_schemas() -> dict[str, Any]:
    """The models FastAPI does not see (bodies we parse, error bodies), nested ones included."""
    schemas: dict[str, Any] = {}
    for model in _COMPONENT_MODELS:
        schema = model.model_json_schema(by_alias=True, ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    _add_service_checks(schemas)
    return schemas


def _add_service_checks(schemas: dict[str, Any]) -> None:
    """What the service checks beyond the tolerant models (see :mod:`cds.call.service_call`).

    Every hook we answer has the patient in its context; a hook we do not know is refused;
    a feedback time is an RFC 3339 date-time.
    """
    request = schemas["HookRequest"]["properties"]
    request["hook"]["enum"] = list(HOOKS)
    request["context"].update(
        required=["patientId"], properties={"patientId": {"type": "string", "minLength": 1}}
    )
    schemas["FeedbackItem"]["properties"]["outcomeTimestamp"]["format"] = "date-time"


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and ``/openapi.json``) the complete document."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            openapi = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = openapi.setdefault("components", {})
            schemas = components.setdefault("schemas", {})
            for name, schema in _component_schemas().items():
                if name in schemas and schemas[name] != schema:
                    raise ValueError(f"two different OpenAPI schemas are named {name}")
                schemas[name] = schema
            components["securitySchemes"] = {
                _JWT_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "The EHR's signed JWT (CDS Hooks 'Trusting CDS Clients').",
                }
            }
            app.openapi_schema = openapi
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]
