"""Every error path answers with its status and a FHIR OperationOutcome naming the problem."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterator, Sequence
from datetime import datetime
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from cds.app import create_app
from cds.kb.loader import Knowledge
from cds.protocol.wire import FeedbackItem
from cds.settings import Settings
from cds.store.protocol import CallRecord, CardHistory, ShownCard, WithheldCard
from tests.hook_services import service_for

PV = "breast-cancer-followup-patient-view"
JSON = {"content-type": "application/json"}
SECRET_PATIENT = "patient-SECRET-4711"


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": "0f0e1d2c-3b4a-5968-7788-99aabbccddee",
        "context": {"patientId": SECRET_PATIENT, "userId": "Practitioner/1"},
    }
    body.update(overrides)
    return body


def _post(
    client: TestClient, path: str, body: Any, headers: dict[str, str] = JSON
) -> httpx2.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(path, content=content, headers=headers)


def assert_outcome(
    response: httpx2.Response,  # what starlette's TestClient answers with
    status: int,
    code: str,
    *,
    says: str | None = None,
    expression: list[str] | None = None,
) -> dict[str, Any]:
    """The response is ``status`` with one OperationOutcome issue of type ``code``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert len(outcome["issue"]) == 1
    issue: dict[str, Any] = outcome["issue"][0]
    assert issue["severity"] == "error"
    assert issue["code"] == code
    assert isinstance(issue["diagnostics"], str)
    assert issue["diagnostics"]
    if says is not None:
        assert says in issue["diagnostics"]
    if expression is not None:
        assert issue.get("expression", []) == expression
    assert "Traceback" not in response.text
    assert SECRET_PATIENT not in response.text
    return issue


# --- 400 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"hook": "patient-view",', "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"", "empty"),
        (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
    ],
    ids=["garbage", "truncated", "not-utf8", "empty", "too-deep"],
)
def test_malformed_json_is_400(api: TestClient, raw: bytes, says: str) -> None:
    assert_outcome(_post(api, f"/cds-services/{PV}", raw), 400, "invalid", says=says)


@pytest.mark.parametrize(
    ("body", "expression", "says"),
    [
        ([1, 2], [], "(body): Input should be a valid dictionary"),
        ({k: v for k, v in _body().items() if k != "hookInstance"}, ["hookInstance"], None),
        (_body(context="patient"), ["context"], None),
        (_body(context=[SECRET_PATIENT]), ["context"], None),
        (_body(context={"userId": "Practitioner/1"}), ["context.patientId"], "patientId"),
        (_body(context={"patientId": 42}), ["context.patientId"], "patientId"),
        (_body(hook="order-sign"), ["hook"], "answers the patient-view hook"),
        (_body(prefetch=[SECRET_PATIENT]), ["prefetch"], None),
        (
            _body(fhirAuthorization={"access_token": "t", "token_type": "Bearer"}),
            [],
            "fhirServer is required",
        ),
    ],
    ids=[
        "array",
        "no-hookInstance",
        "context-string",
        "context-array",
        "no-patientId",
        "patientId-number",
        "hook-mismatch",
        "prefetch-array",
        "token-without-server",
    ],
)
def test_wrong_shape_is_400(
    api: TestClient, body: Any, expression: list[str] | None, says: str | None
) -> None:
    assert_outcome(
        _post(api, f"/cds-services/{PV}", body), 400, "invalid", says=says, expression=expression
    )


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
@pytest.mark.parametrize(
    "draft_orders", [None, "absent", [], "Bundle"], ids=["null", "absent", "array", "string"]
)
def test_order_hook_without_draft_orders_is_400(
    api: TestClient, every_hook_knowledge: Knowledge, hook: str, draft_orders: Any
) -> None:
    context: dict[str, Any] = {"patientId": "p1", "selections": ["MedicationRequest/1"]}
    if draft_orders != "absent":
        context["draftOrders"] = draft_orders
    service = service_for(every_hook_knowledge, hook)
    response = _post(api, f"/cds-services/{service.spec.id}", _body(hook=hook, context=context))
    assert_outcome(response, 400, "invalid", says="draftOrders", expression=["context.draftOrders"])


def test_validation_errors_never_echo_submitted_values(api: TestClient) -> None:
    body = _body(hookInstance={"nested": SECRET_PATIENT}, context={"patientId": [SECRET_PATIENT]})
    issue = assert_outcome(_post(api, f"/cds-services/{PV}", body), 400, "invalid")
    assert "hookInstance" in issue["diagnostics"]


# --- 404 and 405 --------------------------------------------------------------------------------


def test_unknown_service_is_404(api: TestClient) -> None:
    response = _post(api, "/cds-services/no-such-service", _body())
    assert_outcome(response, 404, "not-found", says="no-such-service", expression=["id"])


def test_unknown_service_feedback_is_404(api: TestClient) -> None:
    response = _post(api, "/cds-services/no-such-service/feedback", {"feedback": []})
    assert_outcome(response, 404, "not-found", says="no-such-service")


@pytest.mark.parametrize("path", ["/nope", "/cds-services/a/b/c", "/cds-services/x/feedback/y"])
def test_unknown_route_is_404(api: TestClient, path: str) -> None:
    assert_outcome(api.get(path), 404, "not-found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/cds-services/{PV}"),
        ("PUT", f"/cds-services/{PV}"),
        ("DELETE", "/cds-services"),
        ("POST", "/cds-services"),
        ("GET", f"/cds-services/{PV}/feedback"),
        ("POST", "/healthz"),
    ],
)
def test_wrong_method_is_405(api: TestClient, method: str, path: str) -> None:
    response = api.request(method, path)
    assert_outcome(response, 405, "not-supported")
    assert response.headers["allow"]


# --- 412 ----------------------------------------------------------------------------------------


def test_no_prefetch_and_no_fhir_server_is_412(api: TestClient) -> None:
    response = _post(api, f"/cds-services/{PV}", _body())
    assert_outcome(
        response,
        412,
        "incomplete",
        says="required prefetch 'patient' (Patient) is unavailable: no fhirServer in the request",
        expression=["prefetch.patient"],
    )


def test_missing_optional_keys_with_no_rule_left_is_412(
    api: TestClient, every_hook_knowledge: Knowledge
) -> None:
    body = _body(prefetch={"patient": {"resourceType": "Patient", "id": SECRET_PATIENT}})
    optional = sorted(
        key.name for key in every_hook_knowledge.services[PV].prefetch.keys if not key.required
    )
    assert optional
    assert_outcome(
        _post(api, f"/cds-services/{PV}", body),
        412,
        "incomplete",
        says="no rule can run",
        expression=[f"prefetch.{name}" for name in optional],
    )


def test_plain_http_fhir_server_is_refused_with_412(api: TestClient) -> None:
    body = _body(
        fhirServer="http://ehr.example/fhir",
        fhirAuthorization={"access_token": "tok", "token_type": "Bearer"},
    )
    issue = assert_outcome(_post(api, f"/cds-services/{PV}", body), 412, "incomplete")
    assert "must use https" in issue["diagnostics"]
    assert "tok" not in issue["diagnostics"]


def test_null_prefetch_means_no_data_not_412(
    api: TestClient, every_hook_knowledge: Knowledge
) -> None:
    prefetch: dict[str, Any] = {
        key.name: None for key in every_hook_knowledge.services[PV].prefetch.keys
    }
    prefetch["patient"] = {"resourceType": "Patient", "id": SECRET_PATIENT}
    response = _post(api, f"/cds-services/{PV}", _body(prefetch=prefetch))
    assert response.status_code == 200, response.text
    assert response.json() == {"cards": []}


# --- 413 ----------------------------------------------------------------------------------------


@pytest.fixture
def small_body_api(settings: Settings, every_hook_knowledge: Knowledge) -> Iterator[TestClient]:
    small = settings.model_copy(update={"max_body_bytes": 2048})
    with TestClient(create_app(small, knowledge=every_hook_knowledge)) as test_client:
        yield test_client


def _large_body() -> bytes:
    body = _body(extension={"padding": "x" * 4096})
    return json.dumps(body).encode()


def test_declared_content_length_over_the_cap_is_413(small_body_api: TestClient) -> None:
    response = _post(small_body_api, f"/cds-services/{PV}", _large_body())
    assert_outcome(response, 413, "too-long", says="larger than 2048 bytes")


def test_chunked_body_over_the_cap_is_413(small_body_api: TestClient) -> None:
    data = _large_body()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), 512):
            yield data[start : start + 512]

    response = small_body_api.post(f"/cds-services/{PV}", content=chunks(), headers=JSON)
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_outcome(response, 413, "too-long", says="larger than 2048 bytes")


def test_body_under_the_cap_is_read(small_body_api: TestClient) -> None:
    response = _post(small_body_api, f"/cds-services/{PV}", _body())
    assert response.status_code == 412  # parsed: only the prefetch is missing


def test_feedback_over_the_cap_is_413(small_body_api: TestClient) -> None:
    response = _post(small_body_api, f"/cds-services/{PV}/feedback", _large_body())
    assert_outcome(response, 413, "too-long")


# --- 415 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "text/plain"},
        {"content-type": "application/x-www-form-urlencoded"},
        {"content-type": "application/jsonp"},
        {},
    ],
    ids=["text", "form", "jsonp", "none"],
)
def test_wrong_content_type_is_415(api: TestClient, headers: dict[str, str]) -> None:
    response = _post(api, f"/cds-services/{PV}", _body(), headers=headers)
    assert_outcome(response, 415, "not-supported", expression=["Content-Type"])


@pytest.mark.parametrize(
    "content_type", ["application/fhir+json", "application/json; charset=utf-8", "Application/JSON"]
)
def test_json_content_types_are_accepted(api: TestClient, content_type: str) -> None:
    response = _post(api, f"/cds-services/{PV}", _body(), headers={"content-type": content_type})
    assert response.status_code == 412  # parsed; no prefetch


# --- 500 ----------------------------------------------------------------------------------------


class FailingStore:
    """A store whose database is gone; its error message carries data that must not leak."""

    def __init__(self) -> None:
        self.error = RuntimeError(f"connection lost while reading {SECRET_PATIENT}")

    def ping(self) -> None:
        raise self.error

    def record_cards(self, cards: Sequence[ShownCard]) -> None:
        raise self.error

    def save_feedback(
        self, service_id: str, items: Sequence[FeedbackItem], received_at: datetime
    ) -> int:
        raise self.error

    def card_history(
        self,
        patient_key: str,
        keys: Collection[str],
        shown_since: datetime,
        feedback_since: datetime,
    ) -> dict[str, CardHistory]:
        raise self.error

    def record_call(self, call: CallRecord, withheld: Sequence[WithheldCard]) -> None:
        raise self.error

    def close(self) -> None:
        pass


@pytest.fixture
def broken_api(settings: Settings, every_hook_knowledge: Knowledge) -> Iterator[TestClient]:
    app = create_app(settings, knowledge=every_hook_knowledge, store=FailingStore())
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _full_prefetch() -> dict[str, Any]:
    return {
        "patient": {"resourceType": "Patient", "id": SECRET_PATIENT},
        "conditions": {"resourceType": "Bundle", "type": "searchset"},
    }


def test_internal_error_is_500_without_stack_trace(broken_api: TestClient) -> None:
    response = _post(broken_api, f"/cds-services/{PV}", _body(prefetch=_full_prefetch()))
    issue = assert_outcome(response, 500, "exception", says="internal error")
    assert "RuntimeError" not in response.text
    assert "connection lost" not in issue["diagnostics"]
    # and the server keeps answering
    assert broken_api.get("/healthz").status_code == 200


def test_unexpected_error_stops_at_the_app_and_is_logged_without_its_message(
    settings: Settings, every_hook_knowledge: Knowledge
) -> None:
    """Nothing reaches the server (which would log the traceback and the message)."""
    app = create_app(settings, knowledge=every_hook_knowledge, store=FailingStore())
    capture = _Capture()  # after create_app, which sets up the logger's handlers
    logger = logging.getLogger("cds")
    logger.addHandler(capture)
    try:
        with TestClient(app, raise_server_exceptions=True) as client:
            response = _post(client, f"/cds-services/{PV}", _body(prefetch=_full_prefetch()))
    finally:
        logger.removeHandler(capture)
    assert_outcome(response, 500, "exception", says="internal error")
    errors = [r for r in capture.records if r.getMessage() == "unhandled error"]
    assert len(errors) == 1
    fields = errors[0].fields  # type: ignore[attr-defined]
    assert fields["error"] == "RuntimeError"
    assert fields["where"].startswith("test_errors.py:")
    assert errors[0].exc_info is None
    assert SECRET_PATIENT not in json.dumps(fields)


def test_feedback_store_failure_is_500_without_detail(broken_api: TestClient) -> None:
    response = _post(broken_api, f"/cds-services/{PV}/feedback", _feedback_body())
    assert_outcome(response, 500, "exception", says="internal error")
    assert "connection lost" not in response.text


def test_readyz_is_503_when_the_database_is_gone(broken_api: TestClient) -> None:
    response = broken_api.get("/readyz")
    assert_outcome(response, 503, "transient", says="database is not reachable")
    assert "connection lost" not in response.text


# --- feedback -----------------------------------------------------------------------------------


def _feedback_body(**item: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "card": "9368d37b-283f-44a0-93ea-547cebab93ed",
        "outcome": "overridden",
        "overrideReason": {
            "reason": {"system": "http://example.org/reasons", "code": "already-addressed"},
            "userComment": "done last week",
        },
        "outcomeTimestamp": "2024-05-01T10:00:00Z",
    }
    base.update(item)
    return {"feedback": [base]}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"feedback": []}, "feedback"),
        ({}, "feedback"),
        ({"feedback": "accepted"}, "feedback"),
        (_feedback_body(outcome="maybe"), "feedback.0.outcome"),
        (_feedback_body(outcomeTimestamp="last tuesday"), "RFC 3339"),
        (_feedback_body(card=""), "feedback.0.card"),
        ({"feedback": [{"card": "x", "outcome": "accepted"}]}, "outcomeTimestamp"),
    ],
    ids=["empty", "missing", "string", "outcome", "timestamp", "card", "no-timestamp"],
)
def test_malformed_feedback_is_400(api: TestClient, body: Any, says: str) -> None:
    response = _post(api, f"/cds-services/{PV}/feedback", body)
    assert_outcome(response, 400, "invalid", says=says)


def test_malformed_feedback_json_is_400(api: TestClient) -> None:
    response = _post(api, f"/cds-services/{PV}/feedback", b'{"feedback": [')
    assert_outcome(response, 400, "invalid", says="not valid JSON")


def test_feedback_is_idempotent(api: TestClient) -> None:
    body = _feedback_body()
    first = _post(api, f"/cds-services/{PV}/feedback", body)
    again = _post(api, f"/cds-services/{PV}/feedback", body)
    assert first.status_code == again.status_code == 200
    assert first.json() == {"received": 1, "new": 1}
    assert again.json() == {"received": 1, "new": 0}


# --- the call log -------------------------------------------------------------------------------


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_one_log_line_per_call_without_patient_data_or_token(api: TestClient) -> None:
    capture = _Capture()
    logger = logging.getLogger("cds")
    logger.addHandler(capture)
    try:
        body = _body(
            fhirServer="https://ehr.example/fhir",
            fhirAuthorization={"access_token": "tok-SECRET", "token_type": "Bearer"},
            prefetch=_full_prefetch(),
        )
        assert _post(api, f"/cds-services/{PV}", body).status_code == 200
        assert _post(api, f"/cds-services/{PV}", _body()).status_code == 412
    finally:
        logger.removeHandler(capture)
    calls = [r for r in capture.records if r.getMessage() == "call"]
    assert len(calls) == 2
    fields = [r.fields for r in calls]  # type: ignore[attr-defined]
    assert fields[0]["status"] == 200
    assert fields[1]["status"] == 412
    for entry in fields:
        assert entry["service"] == PV
        assert entry["hook"] == "patient-view"
        assert entry["hookInstance"] == "0f0e1d2c-3b4a-5968-7788-99aabbccddee"
        assert isinstance(entry["durationMs"], float)
        text = json.dumps(entry, default=str)
        assert SECRET_PATIENT not in text
        assert "tok-SECRET" not in text
    assert fields[0]["cards"] == 0
