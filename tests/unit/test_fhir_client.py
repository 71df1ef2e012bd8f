"""The FHIR client against httpx.MockTransport: paging, origins, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from cds.errors import FhirServerError
from cds.fhir.client import FhirClient, check_fhir_server_url
from cds.loopback import is_loopback_url

BASE = "https://ehr.example/fhir"
TOKEN = "tok-123"
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """Wraps a handler; keeps every URL asked for and the Authorization header sent with it."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.calls: list[tuple[str, str | None]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((str(request.url), request.headers.get("authorization")))
        return self.handler(request)


def _fetch(handler: Handler, query: str, *, max_pages: int = 5, token: str | None = TOKEN) -> Any:
    async def run() -> Any:
        client = FhirClient(
            httpx.MockTransport(handler), BASE, access_token=token, max_pages=max_pages
        )
        return await client.fetch(query)

    return asyncio.run(run())


def _page(n: int, next_url: str | None) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": {"resourceType": "Condition", "id": f"c{n}"}}],
    }
    if next_url is not None:
        bundle["link"] = [
            {"relation": "self", "url": f"{BASE}/Condition?page={n}"},
            {"relation": "next", "url": next_url},
        ]
    return bundle


def _paged(next_of: Callable[[int], str | None]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params.get("page", "1"))
        return httpx.Response(200, json=_page(n, next_of(n)))

    return handler


def _ids(resources: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in resources]


def test_read_returns_the_resource_and_sends_the_token() -> None:
    recorder = Recorder(lambda _: httpx.Response(200, json={"resourceType": "Patient", "id": "1"}))
    assert _fetch(recorder, "Patient/1") == [{"resourceType": "Patient", "id": "1"}]
    assert recorder.calls == [(f"{BASE}/Patient/1", f"Bearer {TOKEN}")]


def test_no_token_no_authorization_header() -> None:
    recorder = Recorder(lambda _: httpx.Response(200, json={"resourceType": "Patient", "id": "1"}))
    _fetch(recorder, "Patient/1", token=None)
    assert recorder.calls == [(f"{BASE}/Patient/1", None)]


def test_pagination_follows_next_links() -> None:
    recorder = Recorder(_paged(lambda n: f"{BASE}/Condition?page={n + 1}" if n < 3 else None))
    assert _ids(_fetch(recorder, "Condition?patient=1")) == ["c1", "c2", "c3"]
    assert [auth for _, auth in recorder.calls] == [f"Bearer {TOKEN}"] * 3


def test_relative_next_links_resolve_against_the_page() -> None:
    recorder = Recorder(_paged(lambda n: f"Condition?page={n + 1}" if n < 2 else None))
    assert _ids(_fetch(recorder, "Condition?patient=1")) == ["c1", "c2"]
    assert recorder.calls[1][0] == f"{BASE}/Condition?page=2"


def test_pagination_stops_at_the_page_cap_and_fails_the_query() -> None:
    """Pages past the cap are not read, and a partial list is not returned as if whole."""
    recorder = Recorder(_paged(lambda n: f"{BASE}/Condition?page={n + 1}"))  # endless
    with pytest.raises(FhirServerError, match="more than 4 pages") as caught:
        _fetch(recorder, "Condition?patient=1", max_pages=4)
    assert caught.value.kind == "page-cap"
    assert len(recorder.calls) == 4


def test_exactly_the_page_cap_is_enough() -> None:
    recorder = Recorder(_paged(lambda n: f"{BASE}/Condition?page={n + 1}" if n < 4 else None))
    assert _ids(_fetch(recorder, "Condition?patient=1", max_pages=4)) == ["c1", "c2", "c3", "c4"]


def test_next_link_loop_is_not_followed() -> None:
    recorder = Recorder(_paged(lambda n: f"{BASE}/Condition?page={2 if n == 1 else 1}"))
    assert _ids(_fetch(recorder, "Condition?page=1", max_pages=10)) == ["c1", "c2"]
    assert len(recorder.calls) == 2


@pytest.mark.parametrize(
    "foreign",
    [
        "https://evil.example/fhir/Condition?page=2",
        "http://ehr.example/fhir/Condition?page=2",  # same host, other scheme
        "https://ehr.example:8443/fhir/Condition?page=2",  # same host, other port
        "//evil.example/fhir/Condition?page=2",
    ],
)
def test_next_link_to_another_origin_is_not_followed(foreign: str) -> None:
    recorder = Recorder(_paged(lambda n: foreign if n == 1 else None))
    with pytest.raises(FhirServerError) as caught:
        _fetch(recorder, "Condition?patient=1")
    assert caught.value.kind == "foreign-origin"
    assert [url for url, _ in recorder.calls] == [f"{BASE}/Condition?patient=1"]


def test_default_port_spelled_out_is_the_same_origin() -> None:
    recorder = Recorder(
        _paged(lambda n: "https://ehr.example:443/fhir/Condition?page=2" if n == 1 else None)
    )
    assert _ids(_fetch(recorder, "Condition?patient=1")) == ["c1", "c2"]


def test_absolute_url_on_another_origin_is_refused_before_any_request() -> None:
    recorder = Recorder(lambda _: httpx.Response(200, json={"resourceType": "Bundle"}))
    with pytest.raises(FhirServerError) as caught:
        _fetch(recorder, "https://evil.example/fhir/Condition?page=2")
    assert caught.value.kind == "foreign-origin"
    assert recorder.calls == []


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (httpx.Response(401), "unauthorized"),
        (httpx.Response(403), "unauthorized"),
        (httpx.Response(404, json={"resourceType": "OperationOutcome"}), "http-4xx"),
        (httpx.Response(500, text="boom"), "http-5xx"),
        (httpx.Response(302, headers={"location": "https://evil.example/"}), "http-3xx"),
        (httpx.Response(200, text="<html>not json</html>"), "invalid-json"),
        (httpx.Response(200, json=[1, 2, 3]), "invalid-json"),
        (
            httpx.Response(200, json={"resourceType": "OperationOutcome", "issue": []}),
            "outcome",
        ),
    ],
    ids=["401", "403", "404", "500", "redirect", "html", "json-array", "outcome"],
)
def test_failures_become_fhir_server_errors(response: httpx.Response, kind: str) -> None:
    with pytest.raises(FhirServerError) as caught:
        _fetch(lambda _: response, "Condition?patient=1")
    assert caught.value.kind == kind
    assert TOKEN not in caught.value.diagnostics


def test_failure_on_a_later_page_fails_the_query() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page") == "2":
            return httpx.Response(500)
        return httpx.Response(200, json=_page(1, f"{BASE}/Condition?page=2"))

    with pytest.raises(FhirServerError, match="HTTP 500"):
        _fetch(handler, "Condition?patient=1")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (httpx.ConnectError("refused"), "connect"),
        (httpx.ReadTimeout("slow"), "timeout"),
        (httpx.ConnectTimeout("slow"), "timeout"),
        (httpx.RemoteProtocolError("bad"), "connect"),
    ],
)
def test_transport_errors_become_fhir_server_errors(error: Exception, kind: str) -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        raise error

    with pytest.raises(FhirServerError) as caught:
        _fetch(handler, "Patient/1")
    assert caught.value.kind == kind


def test_outcome_entries_in_a_search_are_skipped() -> None:
    bundle = {
        "resourceType": "Bundle",
        "entry": [
            {"resource": {"resourceType": "Condition", "id": "c1"}, "search": {"mode": "match"}},
            {
                "resource": {"resourceType": "OperationOutcome", "issue": []},
                "search": {"mode": "outcome"},
            },
            {"resource": "not an object"},
            "not an entry",
        ],
    }
    assert _ids(_fetch(lambda _: httpx.Response(200, json=bundle), "Condition?x=1")) == ["c1"]


@pytest.mark.parametrize(
    "bundle",
    [
        {"resourceType": "Bundle", "entry": 5},
        {"resourceType": "Bundle", "entry": [], "link": "next"},
        {"resourceType": "Bundle", "link": [{"relation": "next", "url": 7}]},
    ],
)
def test_malformed_bundle_fields_are_tolerated(bundle: dict[str, Any]) -> None:
    assert _fetch(lambda _: httpx.Response(200, json=bundle), "Condition?x=1") == []


# --- which servers we call --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allow_http", "refused"),
    [
        ("https://ehr.example/fhir", False, None),
        ("http://127.0.0.1:8091/fhir", False, None),
        ("http://localhost:8080/fhir", False, None),
        ("http://[::1]:8080/fhir", False, None),
        ("http://ehr.example/fhir", False, "must use https"),
        ("http://localhost.evil.example/fhir", False, "must use https"),
        ("http://127.0.0.1.nip.io/fhir", False, "must use https"),
        ("http://ehr.example/fhir", True, None),
        ("ftp://ehr.example/fhir", True, "not an http(s) URL"),
        ("file:///etc/passwd", True, "not an http(s) URL"),
        ("ehr.example/fhir", True, "not an http(s) URL"),
        ("https://ehr.example:99999/fhir", False, "not a valid URL"),
        ("https://ehr.example/fhir?_format=json", False, "without query"),
    ],
)
def test_check_fhir_server_url(url: str, allow_http: bool, refused: str | None) -> None:
    reason = check_fhir_server_url(url, allow_http=allow_http)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None
        assert refused in reason


def test_is_loopback_url() -> None:
    assert is_loopback_url("http://127.0.0.2:1/")
    assert not is_loopback_url("http://10.0.0.1/")
    assert not is_loopback_url("not a url")
