"""CORS for browser-based CDS clients: the preflight and the actual call."""

from __future__ import annotations

from typing import Any

from tests.trust.conftest import PATIENT_VIEW_SERVICE, patient_view_request

SANDBOX = "https://sandbox.cds-hooks.org"
SERVICE_PATH = f"/cds-services/{PATIENT_VIEW_SERVICE}"


def preflight(client: Any, path: str, origin: str) -> Any:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_any_origin_preflight_and_call(make_client: Any) -> None:
    client = make_client(None, cors_origins="*")
    for path in ("/cds-services", SERVICE_PATH, f"{SERVICE_PATH}/feedback"):
        response = preflight(client, path, SANDBOX)
        assert response.status_code == 200, path
        assert response.headers["access-control-allow-origin"] == "*"
        allowed_headers = response.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed_headers
        assert "content-type" in allowed_headers
        assert "POST" in response.headers["access-control-allow-methods"]
    response = client.post(SERVICE_PATH, json=patient_view_request(), headers={"Origin": SANDBOX})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    discovery = client.get("/cds-services", headers={"Origin": SANDBOX})
    assert discovery.headers["access-control-allow-origin"] == "*"


def test_a_refused_token_still_carries_cors_headers(make_client: Any) -> None:
    """The browser must be able to read the 401, or the EHR cannot tell auth from network."""
    client = make_client(None, cors_origins="*")
    response = client.get(
        "/cds-services", headers={"Origin": SANDBOX, "Authorization": "Bearer x.y.z"}
    )
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == "*"


def test_listed_origins_only(make_client: Any) -> None:
    ehr = "https://ehr.hospital.example"
    client = make_client(None, cors_origins=f"{ehr}, {SANDBOX}")
    allowed = preflight(client, SERVICE_PATH, ehr)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ehr
    refused = preflight(client, SERVICE_PATH, "https://evil.example")
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    call = client.post(
        SERVICE_PATH, json=patient_view_request(), headers={"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in call.headers


def test_no_origins_configured_means_no_cors(make_client: Any) -> None:
    client = make_client(None, cors_origins="")
    response = preflight(client, "/cds-services", SANDBOX)
    assert "access-control-allow-origin" not in response.headers
    call = client.get("/cds-services", headers={"Origin": SANDBOX})
    assert call.status_code == 200
    assert "access-control-allow-origin" not in call.headers
