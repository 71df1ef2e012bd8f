"""Hook calls are answered by the lean ASGI layer, everything else by FastAPI, alike."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from cds.api.hook_fast_path import hook_call_service_id
from cds.app import create_app
from cds.call.request_builder import bundle_resources, request_from_resources
from cds.fhir.scenarios import example_patients
from cds.kb.loader import Knowledge
from cds.settings import Settings


def _scope(method: str, path: str, root_path: str = "") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": root_path}


@pytest.mark.parametrize(
    ("method", "path", "root", "expected"),
    [
        ("POST", "/cds-services/svc-1", "", "svc-1"),
        ("POST", "/api/cds-services/svc-1", "/api", "svc-1"),
        ("GET", "/cds-services/svc-1", "", None),
        ("POST", "/cds-services", "", None),
        ("POST", "/cds-services/", "", None),
        ("POST", "/cds-services/svc-1/feedback", "", None),
        ("POST", "/cds-services/svc-1/", "", None),
        ("POST", "/preview", "", None),
    ],
)
def test_only_hook_calls_take_the_fast_path(
    method: str, path: str, root: str, expected: str | None
) -> None:
    assert hook_call_service_id(_scope(method, path, root)) == expected
    assert hook_call_service_id({"type": "websocket", "path": path}) is None


def _fast_only(settings: Settings, knowledge: Knowledge, passed_on: list[str]) -> httpx.AsyncClient:
    """The app with FastAPI's own stack replaced by one that fails every request it gets."""
    app = create_app(settings, knowledge=knowledge, use_database=False)

    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        passed_on.append(scope["path"])
        await send({"type": "http.response.start", "status": 599, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app.middleware_stack = refuse
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def test_hook_call_is_answered_without_fastapi(settings: Settings, knowledge: Knowledge) -> None:
    service = knowledge.services_for("patient-view")[0]
    scenario = next(s for s in example_patients() if s.id == "breast-cancer-new-back-pain")
    body = request_from_resources(
        bundle_resources(scenario.bundle), service.prefetch, hook="patient-view", hook_instance="f1"
    )
    passed_on: list[str] = []

    async def calls() -> tuple[httpx.Response, ...]:
        async with _fast_only(settings, knowledge, passed_on) as client:
            return (
                await client.post(f"/cds-services/{service.spec.id}", json=body),
                await client.post("/cds-services/no-such-service", json=body),
                await client.post(
                    f"/cds-services/{service.spec.id}",
                    content=b"{",
                    headers={"content-type": "application/json"},
                ),
                await client.get("/cds-services"),
            )

    ok, unknown, bad, other = asyncio.run(calls())
    assert ok.status_code == 200
    codes = [card["source"]["topic"]["code"] for card in ok.json()["cards"]]
    assert "bone-pain-after-breast-cancer" in codes
    assert unknown.status_code == 404
    assert unknown.json()["resourceType"] == "OperationOutcome"
    assert bad.status_code == 400
    assert bad.json()["issue"][0]["severity"] == "error"
    assert other.status_code == 599
    assert passed_on == ["/cds-services"]


def test_missing_token_is_refused_with_a_bearer_challenge(
    settings: Settings, knowledge: Knowledge
) -> None:
    app = create_app(settings, knowledge=knowledge, use_database=False)
    app.state.runtime.settings = settings.model_copy(update={"require_jwt": True})
    service = knowledge.services_for("patient-view")[0]

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post(f"/cds-services/{service.spec.id}", json={})

    response = asyncio.run(call())
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["resourceType"] == "OperationOutcome"


def test_hook_calls_keep_cors_headers_and_metrics(settings: Settings, knowledge: Knowledge) -> None:
    app = create_app(
        settings.model_copy(update={"cors_origins": "https://ehr.example"}),
        knowledge=knowledge,
        use_database=False,
    )
    service = knowledge.services_for("patient-view")[0]

    async def calls() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            call = await client.post(
                f"/cds-services/{service.spec.id}",
                json={},
                headers={"Origin": "https://ehr.example"},
            )
            return call, await client.get("/metrics")

    call, metrics = asyncio.run(calls())
    assert call.status_code == 400
    assert call.headers["access-control-allow-origin"] == "https://ehr.example"
    counted = f'route="service",service="{service.spec.id}",status="400"'
    assert any(
        counted in line and "cds_requests_total" in line for line in metrics.text.splitlines()
    )
