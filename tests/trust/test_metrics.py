"""GET /metrics: requests, latency, cards, FHIR fetches and JWT refusals, without patient data."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from cds.api.metrics import RequestMetricsMiddleware
from cds.call.service_call import CallResult
from cds.kb.loader import Knowledge
from cds.runtime import Runtime
from cds.settings import Settings
from tests.trust.conftest import PATIENT_VIEW_SERVICE, patient_view_request

SERVICE_PATH = f"/cds-services/{PATIENT_VIEW_SERVICE}"


def samples(client: TestClient, name: str) -> list[tuple[dict[str, str], float]]:
    response = client.get("/metrics")
    assert response.status_code == 200
    found = []
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name:
                found.append((sample.labels, sample.value))
    return found


def value(client: TestClient, name: str, **labels: str) -> float:
    return sum(v for found, v in samples(client, name) if labels.items() <= found.items())


@pytest.fixture
def fhir_server() -> Iterator[str]:
    """A FHIR server that fails every request with 500."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fhir"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_service_call_is_counted_with_its_cards(make_client: Any, knowledge: Knowledge) -> None:
    client = make_client(None)
    answer = client.post(SERVICE_PATH, json=patient_view_request())
    assert answer.status_code == 200
    cards = answer.json()["cards"]
    assert cards
    labels = {"route": "service", "service": PATIENT_VIEW_SERVICE, "hook": "patient-view"}
    assert value(client, "cds_requests_total", status="200", **labels) == 1
    assert value(client, "cds_request_duration_seconds_count", route="service") == 1
    counted = {(s["rule"], s["indicator"]): v for s, v in samples(client, "cds_cards_total")}
    assert {rule for rule, _ in counted} <= set(knowledge.rules)
    by_indicator: Counter[str] = Counter()
    for (_, indicator), count in counted.items():
        by_indicator[indicator] += int(count)
    assert by_indicator == Counter(card["indicator"] for card in cards)


def test_routes_and_unknown_services_have_bounded_labels(make_client: Any) -> None:
    client = make_client(None)
    client.get("/cds-services")
    client.post(f"/cds-services/made-up-{uuid.uuid4()}", json=patient_view_request())
    client.post(
        f"{SERVICE_PATH}/feedback",
        json={
            "feedback": [
                {"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-01-01T00:00:00Z"}
            ]
        },
    )
    client.get("/healthz")
    requests = {
        (s["route"], s["service"], s["hook"], s["status"]): v
        for s, v in samples(client, "cds_requests_total")
    }
    assert requests == {
        ("discovery", "", "", "200"): 1.0,
        ("service", "unknown", "", "404"): 1.0,
        ("feedback", PATIENT_VIEW_SERVICE, "patient-view", "200"): 1.0,
    }


def test_no_patient_data_user_or_hook_instance_in_the_metrics(make_client: Any) -> None:
    client = make_client(None)
    body = patient_view_request(hook_instance="hook-instance-7f3a9c")
    body["context"] = {"userId": "Practitioner/user-5b1e", "patientId": "patient-4711"}
    body["prefetch"]["patient"]["id"] = "patient-4711"
    client.post(SERVICE_PATH, json=body)
    client.get("/cds-services", headers={"Authorization": "Bearer token-secret.abc.def"})
    text = client.get("/metrics").text
    for secret in ("patient-4711", "user-5b1e", "hook-instance-7f3a9c", "token-secret"):
        assert secret not in text


def test_fhir_fetches_are_timed_and_failures_counted(make_client: Any, fhir_server: str) -> None:
    client = make_client(None)
    body = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": fhir_server,
        "context": {"userId": "Practitioner/u", "patientId": "p1"},
    }
    answer = client.post(SERVICE_PATH, json=body)
    assert answer.status_code == 412
    assert value(client, "cds_fhir_requests_total", outcome="5xx") >= 1
    assert value(client, "cds_fhir_request_duration_seconds_count") >= 1
    assert value(client, "cds_requests_total", status="412") == 1


def test_fetch_errors_of_an_answered_call_are_counted_by_kind(knowledge: Knowledge) -> None:
    """A call answered despite missing keys: its CallResult's error kinds reach the counter."""
    runtime = Runtime(settings=Settings(), knowledge=knowledge)
    app = FastAPI()

    @app.post("/cds-services/{service_id}")
    async def degraded(service_id: str, request: Request) -> dict[str, Any]:
        request.state.call_result = CallResult(
            cards=[],
            fired=[],
            not_evaluated={},
            fetch_errors=["timeout", "http-5xx", "http-5xx"],
        )
        return {"cards": []}

    @app.get("/metrics")
    async def metrics() -> Any:
        from fastapi.responses import Response

        return Response(runtime.metrics.render())

    app.add_middleware(RequestMetricsMiddleware, runtime=runtime)
    with TestClient(app) as client:
        assert client.post(SERVICE_PATH).status_code == 200
        errors = {s["kind"]: v for s, v in samples(client, "cds_fhir_fetch_errors_total")}
    assert errors == {"timeout": 1.0, "http-5xx": 2.0}


def test_jwt_refusals_are_counted_by_reason(make_client: Any) -> None:
    client = make_client(None)
    for _ in range(2):
        client.get("/cds-services", headers={"Authorization": "Bearer a.b.c"})
    client.get("/cds-services", headers={"Authorization": "Basic eA=="})
    refusals = {s["reason"]: v for s, v in samples(client, "cds_jwt_rejections_total")}
    assert refusals == {"no_trusted_clients": 2.0, "malformed_header": 1.0}


def test_the_exposition_format(make_client: Any) -> None:
    response = make_client(None).get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE cds_requests_total counter" in response.text
    assert "_created" not in response.text


def test_metrics_can_be_switched_off(make_client: Any) -> None:
    client = make_client(None, metrics_enabled=False)
    assert client.get("/cds-services").status_code == 200
    assert client.get("/metrics").status_code == 404
