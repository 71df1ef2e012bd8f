"""API fuzzing: schemathesis drives the app in-process (ASGI) from its own OpenAPI document.

Every documented operation gets generated requests, schema-valid and schema-invalid. The checks:
no 500; status, content type and body as documented; schema-invalid input refused; and every
non-2xx JSON answer a FHIR OperationOutcome (the pages answer their own errors as HTML, as the
document says). The FHIR client's HTTP is replaced by a transport that refuses every request, so
generated ``fhirServer`` URLs never leave the process.

(schemathesis' lazy pytest integration does not run under pytest 9, so each operation is a
parametrized test driving ``operation.as_strategy()`` with Hypothesis.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python.asgi import shutdown_lifespans

from cds.api.openapi import OperationOutcome
from cds.app import create_app
from cds.kb.loader import Knowledge
from cds.runtime import Runtime
from cds.settings import Settings

if TYPE_CHECKING:
    from schemathesis.specs.openapi.schemas import OpenApiCase

EXAMPLES_PER_OPERATION = 40
EXAMPLES_PER_HOOK_CALL = 150  # the route EHRs call, and the deepest

# Every operation of the document; test_the_list_is_the_document keeps it complete.
OPERATIONS = [
    "GET /cds-services",
    "POST /cds-services/{service_id}",
    "POST /cds-services/{service_id}/feedback",
    "GET /healthz",
    "GET /readyz",
    "GET /static/{name}",
    "GET /",
    "GET /preview",
    "POST /preview",
    "GET /knowledge",
    "GET /knowledge/{rule_id}",
    "GET /education",
    "GET /education/{slug}",
    "GET /analytics",
    "GET /analytics/feedback",
    "GET /metrics",
]


class OutsideRequests:
    """The FHIR transport of the app under test: refuses, and remembers where it was asked."""

    def __init__(self) -> None:
        self.hosts: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.hosts.append(request.url.host)
        raise httpx.ConnectError("no network in the fuzz test", request=request)


@pytest.fixture(scope="module")
def outside() -> OutsideRequests:
    return OutsideRequests()


@pytest.fixture(scope="module")
def api_schema(
    tmp_path_factory: pytest.TempPathFactory, knowledge: Knowledge, outside: OutsideRequests
) -> Iterator[Any]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    app = create_app(
        Settings(data_dir=folder / "var", require_jwt=False, cors_origins="", synthea_dir=None),
        knowledge=knowledge,
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # also starts the lifespan
    runtime: Runtime = app.state.runtime
    assert runtime.fhir_transport is not None
    asyncio.run(runtime.fhir_transport.aclose())  # never used: replaced before the first call
    runtime.fhir_transport = httpx.MockTransport(outside)
    try:
        yield schema
    finally:
        shutdown_lifespans()


def error_is_operation_outcome(ctx: Any, response: Any, case: OpenApiCase) -> bool | None:
    """A non-2xx JSON answer is a FHIR OperationOutcome; an HTML one comes from a page."""
    if response.status_code < 400:
        return None
    media_type = (response.headers.get("content-type") or [""])[0].split(";")[0].strip()
    if media_type == "text/html":
        assert case.operation.tags == ["pages"], f"HTML error from {case.operation.label}"
        return None
    assert media_type == "application/fhir+json", f"error sent as {media_type!r}"
    OperationOutcome.model_validate_json(response.content)
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    error_is_operation_outcome,
]


def test_the_list_is_the_document(api_schema: Any) -> None:
    labels = [result.ok().label for result in api_schema.get_all_operations()]
    assert sorted(labels) == sorted(OPERATIONS)


def known_ids(knowledge: Knowledge) -> dict[str, list[str]]:
    """Path parameter values that exist, so generated calls also reach past the 404."""
    return {
        "service_id": sorted(knowledge.services),
        "rule_id": sorted(knowledge.rules),
        "slug": sorted(knowledge.education),
        "name": ["site.css", "preview.js"],
    }


def as_a_real_call(case: OpenApiCase, knowledge: Knowledge, prefetched: bool) -> OpenApiCase:
    """A schema-valid hook call names the hook of the service it calls (else it is a 400);
    when ``prefetched``, its prefetch also answers every key (the patient, the rest "none") and
    an order hook gets its draft orders, so the call reaches the rules."""
    service_id = (case.path_parameters or {}).get("service_id", "")
    service = knowledge.services.get(service_id)
    if service is None or not isinstance(case.body, dict) or "hook" not in case.body:
        return case
    case.body["hook"] = service.spec.hook
    context = case.body.get("context")
    patient_id = context.get("patientId") if isinstance(context, dict) else None
    if prefetched and isinstance(context, dict) and isinstance(patient_id, str):
        prefetch: dict[str, Any] = {key.name: None for key in service.prefetch.keys}
        prefetch["patient"] = {"resourceType": "Patient", "id": patient_id}
        case.body["prefetch"] = prefetch
        if service.spec.hook.startswith("order-") and not isinstance(
            context.get("draftOrders"), dict
        ):
            context["draftOrders"] = {"resourceType": "Bundle", "type": "collection"}
    return case


def cases_for(operation: Any, knowledge: Knowledge) -> st.SearchStrategy[OpenApiCase]:
    """Generated cases, half of them (when the path has a parameter) with an id that exists."""
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    generated = [operation.as_strategy(mode) for mode in modes]
    names = [p.name for p in operation.path_parameters]
    if not names:
        return st.one_of(*generated)
    (name,) = names
    existing = st.sampled_from(known_ids(knowledge)[name]).flatmap(
        lambda value: st.builds(
            as_a_real_call,
            operation.as_strategy(GenerationMode.POSITIVE, path_parameters={name: value}),
            st.just(knowledge),
            st.booleans(),
        )
    )
    existing_negative = st.sampled_from(known_ids(knowledge)[name]).flatmap(
        lambda value: operation.as_strategy(GenerationMode.NEGATIVE, path_parameters={name: value})
    )
    # Mostly ids that exist: a made-up id only ever meets the 404.
    return st.one_of(existing, existing, existing, existing_negative, *generated)


@pytest.mark.slow  # a long property or fuzz run: `make test`, not `make check`
@pytest.mark.parametrize("label", OPERATIONS)
def test_every_operation_answers_as_documented(
    api_schema: Any, knowledge: Knowledge, outside: OutsideRequests, label: str
) -> None:
    method, path = label.split(" ", 1)
    cases = cases_for(api_schema[path][method], knowledge)

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES_PER_HOOK_CALL if "{service_id}" in label else EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_documented(case: OpenApiCase) -> None:
        case.call_and_validate(checks=CHECKS)

    answers_as_documented()
    assert all(host for host in outside.hosts)  # asked, refused, never sent
