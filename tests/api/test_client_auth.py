"""authenticate_client on its own: when a token is needed, which ``aud`` it must carry, and that
every refusal is counted by reason."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import Request

from cds.api.client_auth import audiences_for, authenticate_client
from cds.errors import Unauthorized
from cds.kb.loader import Knowledge
from cds.runtime import Runtime
from cds.settings import Settings
from cds.trust.key_sets import JwksCache
from cds.trust.tokens import ClientVerifier, MemoryReplayCache, VerifiedClient

BASE = "https://cds.example.org/api"
CLIENT = VerifiedClient(iss="https://ehr.example.org", tenant=None, kid="k1")


class RecordingVerifier(ClientVerifier):
    """Accepts the token ``good``, refuses any other; remembers the audiences it was given."""

    def __init__(self) -> None:
        keys = JwksCache(httpx.AsyncClient(), min_refresh_seconds=30, max_age_seconds=3600)
        super().__init__({}, keys, MemoryReplayCache(), leeway_seconds=0, max_lifetime_seconds=300)
        self.audiences: list[Sequence[str]] = []

    async def verify(self, token: str, audiences: Sequence[str]) -> VerifiedClient:
        self.audiences.append(audiences)
        if token != "good":
            raise Unauthorized("bad_signature")
        return CLIENT


def _runtime(
    knowledge: Knowledge, tmp_path: Path, *, require_jwt: bool, verifier: ClientVerifier | None
) -> Runtime:
    settings = Settings(
        data_dir=tmp_path, require_jwt=require_jwt, cors_origins="", public_base_url=BASE
    )
    return Runtime(settings=settings, knowledge=knowledge, verifier=verifier)


def _request(
    runtime: Runtime, path: str, authorization: str | None = None, root_path: str = ""
) -> Request:
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "root_path": root_path,
        "headers": headers,
        "app": SimpleNamespace(state=SimpleNamespace(runtime=runtime)),
    }
    return Request(scope)


def _rejections(runtime: Runtime, reason: str) -> float:
    value = runtime.metrics.registry.get_sample_value(
        "cds_jwt_rejections_total", {"reason": reason}
    )
    return value or 0.0


def test_the_audience_is_the_endpoint_url_under_the_public_base() -> None:
    assert audiences_for(BASE + "/", "/cds-services/s") == [f"{BASE}/cds-services/s"]


def test_feedback_also_accepts_the_service_url_as_audience() -> None:
    assert audiences_for(BASE, "/cds-services/s/feedback") == [
        f"{BASE}/cds-services/s/feedback",
        f"{BASE}/cds-services/s",
    ]


def test_no_token_passes_when_tokens_are_optional(knowledge: Knowledge, tmp_path: Path) -> None:
    verifier = RecordingVerifier()
    runtime = _runtime(knowledge, tmp_path, require_jwt=False, verifier=verifier)
    request = _request(runtime, "/cds-services")
    asyncio.run(authenticate_client(request, runtime))
    assert verifier.audiences == []
    assert not hasattr(request.state, "client")


def test_no_token_is_refused_and_counted_when_tokens_are_required(
    knowledge: Knowledge, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = _runtime(knowledge, tmp_path, require_jwt=True, verifier=RecordingVerifier())
    with caplog.at_level(logging.INFO), pytest.raises(Unauthorized) as raised:
        asyncio.run(authenticate_client(_request(runtime, "/cds-services"), runtime))
    assert raised.value.reason == "missing_token"
    assert _rejections(runtime, "missing_token") == 1
    assert "client refused" in caplog.text


def test_a_token_without_trusted_clients_is_refused_even_when_optional(
    knowledge: Knowledge, tmp_path: Path
) -> None:
    runtime = _runtime(knowledge, tmp_path, require_jwt=False, verifier=None)
    with pytest.raises(Unauthorized) as raised:
        asyncio.run(authenticate_client(_request(runtime, "/cds-services", "Bearer good"), runtime))
    assert raised.value.reason == "no_trusted_clients"
    assert _rejections(runtime, "no_trusted_clients") == 1


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer  ", "good"])
def test_a_malformed_header_is_refused_without_asking_the_verifier(
    knowledge: Knowledge, tmp_path: Path, header: str
) -> None:
    verifier = RecordingVerifier()
    runtime = _runtime(knowledge, tmp_path, require_jwt=False, verifier=verifier)
    with pytest.raises(Unauthorized) as raised:
        asyncio.run(authenticate_client(_request(runtime, "/cds-services", header), runtime))
    assert raised.value.reason == "malformed_header"
    assert verifier.audiences == []
    assert _rejections(runtime, "malformed_header") == 1


def test_a_bad_token_is_refused_even_when_tokens_are_optional(
    knowledge: Knowledge, tmp_path: Path
) -> None:
    runtime = _runtime(knowledge, tmp_path, require_jwt=False, verifier=RecordingVerifier())
    with pytest.raises(Unauthorized):
        asyncio.run(
            authenticate_client(_request(runtime, "/cds-services", "Bearer forged"), runtime)
        )
    assert _rejections(runtime, "bad_signature") == 1


def test_a_good_token_names_the_client_on_the_request(knowledge: Knowledge, tmp_path: Path) -> None:
    verifier = RecordingVerifier()
    runtime = _runtime(knowledge, tmp_path, require_jwt=True, verifier=verifier)
    request = _request(runtime, "/cds-services/s/feedback", "bearer good")
    asyncio.run(authenticate_client(request, runtime))
    assert request.state.client == CLIENT
    assert verifier.audiences == [audiences_for(BASE, "/cds-services/s/feedback")]
    assert _rejections(runtime, "bad_signature") == 0


@pytest.mark.parametrize(
    ("path", "root_path", "route"),
    [
        ("/proxy/cds-services/s", "/proxy", "/cds-services/s"),  # the proxy prefix is dropped
        ("/cds-services/s", "/proxy", "/cds-services/s"),  # a path without it is kept
        ("/cds-services/s", "", "/cds-services/s"),
    ],
)
def test_the_audience_comes_from_the_route_not_the_proxy_prefix(
    knowledge: Knowledge, tmp_path: Path, path: str, root_path: str, route: str
) -> None:
    verifier = RecordingVerifier()
    runtime = _runtime(knowledge, tmp_path, require_jwt=True, verifier=verifier)
    asyncio.run(authenticate_client(_request(runtime, path, "Bearer good", root_path), runtime))
    assert verifier.audiences == [[f"{BASE}{route}"]]
