"""The hooks routes' own helpers: the 400 built from a validation error, the discovery document
built from the services, and what the call route logs."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError

from cds.api.hooks_routes import SPEC_VERSION, discovery_document, validation_message
from cds.kb.loader import Knowledge
from cds.protocol.wire import HookRequest


class _Shape(BaseModel):
    name: str
    items: list[int]


def _error(data: Any, model: type[BaseModel] = _Shape) -> ValidationError:
    with pytest.raises(ValidationError) as raised:
        model.model_validate(data)
    return raised.value


def test_the_400_names_each_bad_field_with_its_path() -> None:
    error = validation_message(_error({"name": 1, "items": [1, "two"]}), "thing")
    assert error.status == 400
    assert error.diagnostics.startswith("invalid thing: ")
    assert "name: " in error.diagnostics
    assert "items.1: " in error.diagnostics
    assert error.expression == ["name", "items.1"]


def test_a_wrong_body_is_named_as_the_body_without_an_expression() -> None:
    error = validation_message(_error([1, 2]), "thing")
    assert error.diagnostics.startswith("invalid thing: (body): ")
    assert error.expression == []


def test_the_400_never_echoes_the_submitted_values() -> None:
    error = validation_message(_error({"name": "patient-SECRET", "items": ["SECRET-2"]}), "x")
    assert "SECRET" not in error.diagnostics


def test_the_400_lists_at_most_ten_problems() -> None:
    error = validation_message(_error({"name": "n", "items": ["x"] * 25}), "thing")
    assert len(error.expression) == 10
    assert error.diagnostics.count("; ") == 9


def test_a_hook_request_error_uses_the_wire_names() -> None:
    error = validation_message(_error({"hook": "patient-view"}, HookRequest), "request")
    assert "hookInstance" in error.expression


def test_discovery_describes_every_service_once(knowledge: Knowledge) -> None:
    document = discovery_document(knowledge.services)
    assert [s.id for s in document.services] == list(knowledge.services)
    for descriptor in document.services:
        service = knowledge.services[descriptor.id]
        assert descriptor.hook == service.spec.hook
        assert descriptor.title == service.spec.title
        assert descriptor.prefetch == service.prefetch.templates()
        assert descriptor.version == SPEC_VERSION


def test_discovery_of_no_services_is_an_empty_list() -> None:
    assert discovery_document({}).services == []


def test_discovery_is_built_once_per_app(client: TestClient) -> None:
    first = client.get("/cds-services")
    assert first.status_code == 200
    cached = client.app.state.discovery  # type: ignore[attr-defined]
    assert client.get("/cds-services").json() == first.json() == cached


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_made_up_service_id_is_logged_as_unknown(client: TestClient) -> None:
    made_up = "x" * 300
    capture = _Capture()  # the "cds" logger does not propagate: listen on it directly
    logger = logging.getLogger("cds")
    logger.addHandler(capture)
    try:
        assert client.post(f"/cds-services/{made_up}", json={}).status_code == 404
    finally:
        logger.removeHandler(capture)
    calls = [getattr(r, "fields", {}) for r in capture.records if r.getMessage() == "call"]
    assert len(calls) == 1
    entry = calls[0]
    assert entry["service"] == "unknown"
    assert entry["status"] == 404
    assert entry["error"] == "UnknownService"
    assert made_up not in json.dumps(entry)
