"""What answers publicly: CDS_PAGES, /metrics, a trailing slash, feedback on unknown cards."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from cds.app import OPERATOR_PAGES, create_app
from cds.kb.loader import Knowledge
from cds.settings import Settings
from cds.store.analytics import rule_feedback_stats
from tests.trust.conftest import patient_view_request

SERVICE = "breast-cancer-followup-patient-view"


def _client(tmp_path: Path, knowledge: Knowledge, **options: Any) -> TestClient:
    settings = Settings(data_dir=tmp_path / "var", require_jwt=False, cors_origins="", **options)
    return TestClient(create_app(settings, knowledge=knowledge))


@pytest.fixture
def pages_off(tmp_path: Path, knowledge: Knowledge) -> Iterator[TestClient]:
    with _client(tmp_path, knowledge, pages=False, metrics_enabled=False) as client:
        yield client


def test_pages_off_leaves_only_the_service_and_what_cards_link_to(
    pages_off: TestClient, knowledge: Knowledge
) -> None:
    for path in sorted(OPERATOR_PAGES):
        assert pages_off.get(path).status_code == 404, path
    assert pages_off.post("/preview", data={"patient": "x"}).status_code in (404, 405)
    assert pages_off.get("/metrics").status_code == 404
    # Card links point at the rule and education pages: they stay, with their stylesheet.
    response = pages_off.post(f"/cds-services/{SERVICE}", json=patient_view_request())
    links = [link["url"] for card in response.json()["cards"] for link in card["links"]]
    assert links
    for url in links:
        assert pages_off.get(url.removeprefix("http://127.0.0.1:8080")).status_code == 200, url
    assert pages_off.get("/static/site.css").status_code == 200
    assert pages_off.get("/cds-services").status_code == 200
    assert pages_off.get("/healthz").status_code == 200
    assert pages_off.get("/readyz").json()["database"] == "sqlite"


def test_pages_on_serves_the_operator_pages(client: TestClient) -> None:
    for path in ("/", "/preview", "/analytics", "/analytics/feedback", "/metrics"):
        assert client.get(path).status_code == 200, path


def test_metrics_include_process_metrics(client: TestClient) -> None:
    body = client.get("/metrics").text
    assert "process_resident_memory_bytes" in body
    assert "process_cpu_seconds_total" in body


@pytest.mark.parametrize(
    "path", [f"/cds-services/{SERVICE}/", f"/cds-services/{SERVICE}/feedback/"]
)
def test_a_trailing_slash_is_a_404_outcome_never_an_empty_redirect(
    client: TestClient, path: str
) -> None:
    response = client.post(path, json=patient_view_request(), follow_redirects=False)
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_feedback_on_a_card_never_issued_is_kept_out_of_the_analytics(
    client: TestClient,
) -> None:
    now = datetime.now(UTC)
    item = {
        "card": "00000000-0000-4000-8000-000000000000",
        "outcome": "overridden",
        "overrideReason": {
            "reason": {
                "system": "urn:cds:breast-cancer-followup:override-reason",
                "code": "already-addressed",
            }
        },
        "outcomeTimestamp": now.isoformat(),
    }
    response = client.post(f"/cds-services/{SERVICE}/feedback", json={"feedback": [item]})
    assert response.status_code == 200
    store = client.app.state.runtime.database  # type: ignore[attr-defined]
    with store.engine.connect() as connection:
        row = connection.execute(text("SELECT hook_instance FROM feedback")).one()
    assert row.hook_instance is None  # stored apart: joined to no shown card
    since = datetime(2000, 1, 1, tzinfo=UTC)
    assert rule_feedback_stats(store, since, datetime(2100, 1, 1, tzinfo=UTC)) == []
    assert client.get("/analytics/feedback").json()["rules"] == []
