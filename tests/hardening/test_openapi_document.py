"""The OpenAPI document describes what the service really sends: checked against real answers."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from cds.api.analytics_routes import RuleFeedback
from cds.api.openapi import OperationOutcome
from cds.app import request_error_response
from cds.errors import RequestError
from cds.protocol.outcome import operation_outcome
from cds.store.analytics import RuleFeedbackStats


def test_the_document_is_valid_openapi(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    validate(document)
    schemas = document["components"]["schemas"]
    assert {"HookRequest", "FeedbackRequest", "OperationOutcome"} <= set(schemas)
    assert "HTTPValidationError" not in schemas  # FastAPI's 422 is never sent (400 instead)


def test_every_error_status_is_an_operation_outcome_or_a_page(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses: dict[str, Any] = operation["responses"]
            assert "422" not in responses, f"{method} {path}"
            assert "default" in responses, f"{method} {path}: no unexpected-error answer"
            for status, response in responses.items():
                if status.startswith(("2", "3")):
                    continue
                content = response["content"]
                outcome = content.get("application/fhir+json", {}).get("schema")
                assert outcome in (None, {"$ref": "#/components/schemas/OperationOutcome"})
                if outcome is None:
                    assert set(content) == {"text/html"}, f"{method} {path} {status}"
                    assert operation["tags"] == ["pages"]


def test_request_bodies_are_the_parsed_models(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    body = paths["/cds-services/{service_id}"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/fhir+json"}
    assert body["application/json"]["schema"] == {"$ref": "#/components/schemas/HookRequest"}
    feedback = paths["/cds-services/{service_id}/feedback"]["post"]["requestBody"]["content"]
    assert feedback["application/json"]["schema"]["$ref"].endswith("/FeedbackRequest")


def test_the_metrics_and_pages_media_types(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    assert set(paths["/education"]["get"]["responses"]["200"]["content"]) == {"text/html"}
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")


def test_every_error_class_renders_as_the_documented_outcome() -> None:
    for error_class in RequestError.__subclasses__():
        error = error_class("why")
        response = request_error_response(error)
        assert response.status_code == error_class.status
        outcome = OperationOutcome.model_validate(orjson.loads(response.body))
        assert outcome.issue[0].code == error_class.code
        # An authentication failure says only "unauthorized", whatever the reason was.
        expected = "unauthorized" if error_class.status == 401 else "why"
        assert outcome.issue[0].diagnostics == expected
        assert ("WWW-Authenticate" in response.headers) == (error_class.status == 401)
    OperationOutcome.model_validate(operation_outcome("internal error", code="exception"))


def test_the_analytics_rows_match_their_documented_model() -> None:
    row = RuleFeedbackStats(
        rule_id="R01",
        rule_versions=("1.0.0", "1.1.0"),
        shown=4,
        accepted=1,
        overridden=2,
        acceptance_rate=0.25,
        top_override_reasons=[("already-addressed", "Already addressed", 2)],
    )
    assert RuleFeedback.model_validate(row.as_json()).model_dump() == row.as_json()
