"""One Bundle reader: a prefetch value and a FHIR server's page give the same data."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from cds.call.prefetch import split_prefetch_value
from cds.fhir.client import FhirClient
from cds.protocol.bundle import BundlePage, read_bundle

BASE = "https://ehr.example/fhir"
CONDITION = {"resourceType": "Condition", "id": "c1"}
OUTCOME = {"resourceType": "OperationOutcome", "issue": [{"severity": "information"}]}


def _bundle(*entries: dict[str, Any], links: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": list(entries),
        "link": [{"relation": "self", "url": f"{BASE}/Condition"}]
        + [{"relation": "next", "url": url} for url in links],
    }


BUNDLES = {
    "two next links": _bundle(
        {"resource": CONDITION}, links=(f"{BASE}/Condition?page=2", f"{BASE}/Condition?page=9")
    ),
    "an OperationOutcome without search.mode": _bundle(
        {"resource": CONDITION}, {"resource": OUTCOME}
    ),
    "an entry whose search.mode is outcome": _bundle(
        {"resource": CONDITION, "search": {"mode": "match"}},
        {"resource": {"resourceType": "Basic", "id": "b1"}, "search": {"mode": "outcome"}},
    ),
}


def test_read_bundle() -> None:
    bundle = _bundle(
        {"resource": CONDITION, "search": {"mode": "match"}},
        {"resource": OUTCOME},
        {"resource": {"resourceType": "Basic", "id": "b1"}, "search": {"mode": "outcome"}},
        {"resource": "not an object"},
        {"search": {"mode": "match"}},
        links=("page-2", "page-9"),
    )
    assert read_bundle(bundle) == BundlePage(
        resources=[CONDITION],
        outcomes=[OUTCOME, {"resourceType": "Basic", "id": "b1"}],
        next_url="page-2",
    )
    assert read_bundle({"resourceType": "Bundle", "entry": 5, "link": "next"}) == BundlePage(
        [], [], None
    )


def _fetched(first_page: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """What the FHIR client returns for a search whose first page is ``first_page`` (later
    pages are empty), and the URLs it asked for after the first."""
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        page = first_page if len(asked) == 1 else {"resourceType": "Bundle"}
        return httpx.Response(200, json=page)

    async def run() -> list[dict[str, Any]]:
        client = FhirClient(httpx.MockTransport(handler), BASE, access_token=None, max_pages=5)
        return await client.fetch("Condition?patient=p")

    return asyncio.run(run()), asked[1:]


@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_the_prefetch_and_the_fhir_client_read_a_bundle_alike(name: str) -> None:
    bundle = BUNDLES[name]
    kind, resources, next_url = split_prefetch_value(bundle)
    fetched, followed = _fetched(bundle)
    assert kind == "data"
    assert resources == fetched == [CONDITION]
    assert followed == ([next_url] if next_url else [])
    if name == "two next links":
        assert next_url == f"{BASE}/Condition?page=2"
