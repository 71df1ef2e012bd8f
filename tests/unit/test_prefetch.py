"""Prefetch: template tokens, and absent vs null vs OperationOutcome vs paged Bundle."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from cds.call.prefetch import ResolvedData, render_template, resolve_prefetch, split_prefetch_value
from cds.fhir.client import FhirClient
from cds.kb.prefetch_plan import PrefetchKey, PrefetchPlan
from cds.protocol.wire import HookRequest
from tests.fhir_resources import medication_request, searchset

BASE = "https://ehr.example/fhir"
PLAN = PrefetchPlan(
    keys=(
        PrefetchKey("patient", "Patient/{{context.patientId}}", "Patient", required=True),
        PrefetchKey("conditions", "Condition?patient={{context.patientId}}", "Condition"),
    ),
    rule_keys={},
)
PATIENT = {"resourceType": "Patient", "id": "p1"}
CONDITION = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"}}
OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "timeout"}],
}


# --- templates --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "context", "expected"),
    [
        ("Patient/{{context.patientId}}", {"patientId": "p1"}, "Patient/p1"),
        ("Patient/{{ context.patientId }}", {"patientId": "p1"}, "Patient/p1"),
        (
            "Encounter/{{context.encounterId}}?x={{context.patientId}}",
            {"patientId": "p1", "encounterId": 7},
            "Encounter/7?x=p1",
        ),
        (
            "Practitioner/{{userPractitionerId}}",
            {"userId": "Practitioner/dr-x"},
            "Practitioner/dr-x",
        ),
        (
            "PractitionerRole/{{userPractitionerRoleId}}",
            {"userId": "PractitionerRole/123"},
            "PractitionerRole/123",
        ),
        ("Patient/{{userPatientId}}", {"userId": "Patient/me"}, "Patient/me"),
        ("RelatedPerson/{{userRelatedPersonId}}", {"userId": "RelatedPerson/r"}, "RelatedPerson/r"),
        ("Observation?code=http://loinc.org|1-8", {}, "Observation?code=http://loinc.org|1-8"),
        # A value cannot add query parameters or climb out of the base path.
        (
            "Condition?patient={{context.patientId}}",
            {"patientId": "1&_count=1000"},
            "Condition?patient=1%26_count%3D1000",
        ),
        ("Patient/{{context.patientId}}", {"patientId": "../../x"}, "Patient/..%2F..%2Fx"),
    ],
)
def test_render_template(template: str, context: dict[str, Any], expected: str) -> None:
    assert render_template(template, context) == expected


@pytest.mark.parametrize(
    ("template", "context"),
    [
        ("Patient/{{context.patientId}}", {}),
        ("Patient/{{context.patientId}}", {"patientId": ""}),
        ("Patient/{{context.patientId}}", {"patientId": None}),
        ("Patient/{{context.patientId}}", {"patientId": True}),
        ("Patient/{{context.patientId}}", {"patientId": {"id": "x"}}),
        ("Patient/{{context.patientId}}", {"patientId": ".."}),
        # userId names another kind of user than the token asks for
        ("Practitioner/{{userPractitionerId}}", {"userId": "PractitionerRole/123"}),
        ("Practitioner/{{userPractitionerId}}", {}),
        ("Practitioner/{{userPractitionerId}}", {"userId": "Practitioner/"}),
        ("X/{{unknownToken}}", {"unknownToken": "v"}),
    ],
)
def test_render_template_without_a_value_is_none(template: str, context: dict[str, Any]) -> None:
    assert render_template(template, context) is None


# --- classifying one prefetch value -----------------------------------------------------------


def test_split_prefetch_value_kinds() -> None:
    assert split_prefetch_value(None) == ("null", [], None)
    assert split_prefetch_value(OUTCOME) == ("outcome", [], None)
    assert split_prefetch_value("not a resource") == ("outcome", [], None)
    assert split_prefetch_value(PATIENT) == ("data", [PATIENT], None)
    assert split_prefetch_value(searchset(CONDITION)) == ("data", [CONDITION], None)
    assert split_prefetch_value(searchset()) == ("data", [], None)
    paged = searchset(CONDITION, next_url=f"{BASE}/Condition?page=2")
    assert split_prefetch_value(paged) == ("data", [CONDITION], f"{BASE}/Condition?page=2")
    # A Bundle holding only OperationOutcomes is a failed fetch, not "no data".
    assert split_prefetch_value(searchset(OUTCOME))[0] == "outcome"


@pytest.mark.parametrize(
    "bundle",
    [
        {"resourceType": "Bundle", "entry": 5},
        {"resourceType": "Bundle", "entry": "x", "link": 3},
        {"resourceType": "Bundle", "entry": [None, 1, {"resource": "x"}], "link": [None]},
    ],
)
def test_malformed_bundles_give_no_resources_rather_than_an_error(bundle: dict[str, Any]) -> None:
    assert split_prefetch_value(bundle) == ("data", [], None)


# --- resolving a whole plan -------------------------------------------------------------------


class FakeServer:
    """Answers FHIR GETs from a dict of path+query -> body; records what it was asked."""

    def __init__(self, routes: dict[str, Any], *, delay: dict[str, float] | None = None) -> None:
        self.routes = routes
        self.delay = delay or {}
        self.seen: list[str] = []
        self.auth: list[str | None] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        key = request.url.raw_path.decode()
        self.seen.append(key)
        self.auth.append(request.headers.get("authorization"))
        if key in self.delay:
            await asyncio.sleep(self.delay[key])
        if key not in self.routes:
            return httpx.Response(404, json=OUTCOME)
        return httpx.Response(200, json=self.routes[key])


def _resolve(
    body: dict[str, Any],
    server: FakeServer | None,
    *,
    budget: float = 5.0,
    plan: PrefetchPlan = PLAN,
) -> ResolvedData:
    request = HookRequest.model_validate(
        {"hook": "patient-view", "hookInstance": "h", "context": {"patientId": "p1"}, **body}
    )

    async def run() -> ResolvedData:
        if server is None:
            return await resolve_prefetch(request, plan, None, budget_seconds=budget)
        transport = httpx.MockTransport(server.handle)
        client = FhirClient(transport, BASE, access_token="tok", max_pages=5)
        return await resolve_prefetch(request, plan, client, budget_seconds=budget)

    return asyncio.run(run())


def _ids(data: ResolvedData) -> list[str]:
    return [f"{r['resourceType']}/{r['id']}" for r in data.resources]


def test_full_prefetch_needs_no_server() -> None:
    data = _resolve({"prefetch": {"patient": PATIENT, "conditions": searchset(CONDITION)}}, None)
    assert _ids(data) == ["Patient/p1", "Condition/c1"]
    assert data.unavailable == {}
    assert data.fetched == []


def test_null_means_no_data_and_is_not_fetched() -> None:
    server = FakeServer({"/fhir/Patient/p1": PATIENT})
    data = _resolve(
        {"fhirServer": BASE, "prefetch": {"patient": PATIENT, "conditions": None}}, server
    )
    assert data.unavailable == {}
    assert server.seen == []
    assert _ids(data) == ["Patient/p1"]


def test_absent_key_is_fetched_with_the_bearer_token() -> None:
    server = FakeServer({"/fhir/Condition?patient=p1": searchset(CONDITION)})
    data = _resolve({"fhirServer": BASE, "prefetch": {"patient": PATIENT}}, server)
    assert server.seen == ["/fhir/Condition?patient=p1"]
    assert server.auth == ["Bearer tok"]
    assert data.fetched == ["conditions"]
    assert _ids(data) == ["Patient/p1", "Condition/c1"]


def test_absent_prefetch_fetches_every_key_in_parallel() -> None:
    server = FakeServer(
        {"/fhir/Patient/p1": PATIENT, "/fhir/Condition?patient=p1": searchset(CONDITION)},
        delay={"/fhir/Patient/p1": 0.05, "/fhir/Condition?patient=p1": 0.05},
    )
    data = _resolve({"fhirServer": BASE}, server)
    assert sorted(server.seen) == ["/fhir/Condition?patient=p1", "/fhir/Patient/p1"]
    assert sorted(data.fetched) == ["conditions", "patient"]


def test_operation_outcome_is_refetched() -> None:
    server = FakeServer({"/fhir/Condition?patient=p1": searchset(CONDITION)})
    data = _resolve(
        {"fhirServer": BASE, "prefetch": {"patient": PATIENT, "conditions": OUTCOME}}, server
    )
    assert data.fetched == ["conditions"]
    assert data.unavailable == {}


def test_operation_outcome_without_server_is_unavailable() -> None:
    data = _resolve({"prefetch": {"patient": PATIENT, "conditions": OUTCOME}}, None)
    assert data.unavailable == {"conditions": "no fhirServer in the request"}


def test_absent_key_without_server_is_unavailable() -> None:
    data = _resolve({"prefetch": {"conditions": searchset()}}, None)
    assert data.unavailable == {"patient": "no fhirServer in the request"}


def test_missing_context_value_is_unavailable_not_fetched() -> None:
    plan = PrefetchPlan(
        keys=(PrefetchKey("encounter", "Encounter/{{context.encounterId}}", "Encounter"),),
        rule_keys={},
    )
    server = FakeServer({})
    data = _resolve({"fhirServer": BASE}, server, plan=plan)
    assert data.unavailable == {"encounter": "the template's context value is missing"}
    assert server.seen == []


def test_paged_prefetch_bundle_is_completed_from_the_server() -> None:
    page2 = searchset({**CONDITION, "id": "c2"})
    server = FakeServer({"/fhir/Condition?page=2": page2})
    first = searchset(CONDITION, next_url=f"{BASE}/Condition?page=2")
    data = _resolve(
        {"fhirServer": BASE, "prefetch": {"patient": PATIENT, "conditions": first}}, server
    )
    assert _ids(data) == ["Patient/p1", "Condition/c1", "Condition/c2"]
    assert server.auth == ["Bearer tok"]


def test_paged_prefetch_bundle_without_server_is_unavailable() -> None:
    """Part of a list is not the list: a rule could take the missing page for an absence."""
    first = searchset(CONDITION, next_url=f"{BASE}/Condition?page=2")
    data = _resolve({"prefetch": {"patient": PATIENT, "conditions": first}}, None)
    assert _ids(data) == ["Patient/p1"]
    assert data.unavailable == {
        "conditions": "the prefetch is paged and no fhirServer in the request"
    }


def test_paged_prefetch_next_link_to_another_origin_is_not_followed() -> None:
    server = FakeServer({})
    first = searchset(CONDITION, next_url="https://elsewhere.example/fhir/Condition?page=2")
    data = _resolve(
        {"fhirServer": BASE, "prefetch": {"patient": PATIENT, "conditions": first}}, server
    )
    assert server.seen == []  # the token went nowhere
    assert _ids(data) == ["Patient/p1"]
    assert data.unavailable == {"conditions": "the prefetch's next page is on another origin"}


def test_paged_prefetch_whose_rest_fails_is_unavailable_without_its_first_page() -> None:
    server = FakeServer({})  # 404 for the next page
    first = searchset(CONDITION, next_url=f"{BASE}/Condition?page=2")
    data = _resolve(
        {"fhirServer": BASE, "prefetch": {"patient": PATIENT, "conditions": first}}, server
    )
    assert server.seen == ["/fhir/Condition?page=2"]
    assert _ids(data) == ["Patient/p1"]
    assert data.unavailable == {"conditions": "the FHIR server answered HTTP 404"}


def test_failed_fetch_is_unavailable_with_its_kind() -> None:
    server = FakeServer({})  # 404 for everything
    data = _resolve({"fhirServer": BASE, "prefetch": {"patient": PATIENT}}, server)
    assert data.unavailable == {"conditions": "the FHIR server answered HTTP 404"}
    assert data.fetch_errors == ["http-4xx"]


def test_budget_keeps_what_finished_in_time() -> None:
    server = FakeServer(
        {"/fhir/Patient/p1": PATIENT, "/fhir/Condition?patient=p1": searchset(CONDITION)},
        delay={"/fhir/Condition?patient=p1": 30.0},
    )
    data = _resolve({"fhirServer": BASE}, server, budget=0.3)
    assert data.fetched == ["patient"]
    assert data.unavailable == {
        "conditions": "the FHIR server did not answer within the time budget"
    }
    assert data.fetch_errors == ["timeout"]
    assert _ids(data) == ["Patient/p1"]


def test_unexpected_errors_are_not_swallowed() -> None:
    class Boom(Exception):
        pass

    def explode(_: httpx.Request) -> httpx.Response:
        raise Boom

    handler: Callable[[httpx.Request], httpx.Response] = explode

    async def run() -> None:
        request = HookRequest.model_validate(
            {"hook": "patient-view", "hookInstance": "h", "context": {"patientId": "p1"}}
        )
        client = FhirClient(httpx.MockTransport(handler), BASE, access_token=None, max_pages=1)
        await resolve_prefetch(request, PLAN, client, budget_seconds=5)

    with pytest.raises(Boom):
        asyncio.run(run())


# --- referenced Medications ---------------------------------------------------------------

MED_PLAN = PrefetchPlan(
    keys=(
        PrefetchKey("patient", "Patient/{{context.patientId}}", "Patient", required=True),
        PrefetchKey(
            "medicationRequests",
            "MedicationRequest?patient={{context.patientId}}&_include=MedicationRequest:medication",
            "MedicationRequest",
        ),
    ),
    rule_keys={},
)
MED_QUERY = "/fhir/MedicationRequest?patient=p1&_include=MedicationRequest:medication"


MEDICATION = {"resourceType": "Medication", "id": "m1", "code": {"text": "x"}}
ORDER_M1 = medication_request("o1", "Medication/m1")


def test_a_referenced_medication_that_did_not_come_back_is_read() -> None:
    server = FakeServer({MED_QUERY: searchset(ORDER_M1), "/fhir/Medication/m1": MEDICATION})
    data = _resolve({"fhirServer": BASE, "prefetch": {"patient": PATIENT}}, server, plan=MED_PLAN)
    assert server.seen == [MED_QUERY, "/fhir/Medication/m1"]
    assert _ids(data) == ["Patient/p1", "MedicationRequest/o1", "Medication/m1"]
    assert data.fetched == ["medicationRequests", "referenced-medications"]


def test_an_included_or_contained_medication_is_not_read_again() -> None:
    contained = {**medication_request("o2", "#m2"), "contained": [{**MEDICATION, "id": "m2"}]}
    bundle = searchset(medication_request("o1", "Medication/m1"), MEDICATION, contained)
    server = FakeServer({MED_QUERY: bundle})
    _resolve({"fhirServer": BASE, "prefetch": {"patient": PATIENT}}, server, plan=MED_PLAN)
    assert server.seen == [MED_QUERY]


def test_prefetched_entries_referencing_a_medication_have_it_read_when_a_server_is_given() -> None:
    server = FakeServer({"/fhir/Medication/m1": MEDICATION})
    prefetch = {"patient": PATIENT, "medicationRequests": searchset(ORDER_M1)}
    data = _resolve({"fhirServer": BASE, "prefetch": prefetch}, server, plan=MED_PLAN)
    assert server.seen == ["/fhir/Medication/m1"]
    assert "Medication/m1" in _ids(data)
    without_server = _resolve({"prefetch": prefetch}, None, plan=MED_PLAN)
    assert "Medication/m1" not in _ids(without_server)


def test_a_medication_that_cannot_be_read_leaves_the_call_whole() -> None:
    server = FakeServer({MED_QUERY: searchset(medication_request("o1", "Medication/gone"))})
    data = _resolve({"fhirServer": BASE, "prefetch": {"patient": PATIENT}}, server, plan=MED_PLAN)
    assert data.unavailable == {}
    assert data.fetch_errors == ["http-4xx"]
    assert _ids(data) == ["Patient/p1", "MedicationRequest/o1"]


def test_medication_reads_stay_within_the_budget() -> None:
    server = FakeServer(
        {MED_QUERY: searchset(ORDER_M1), "/fhir/Medication/m1": MEDICATION},
        delay={"/fhir/Medication/m1": 30.0},
    )
    data = _resolve(
        {"fhirServer": BASE, "prefetch": {"patient": PATIENT}}, server, plan=MED_PLAN, budget=0.3
    )
    assert data.fetch_errors == ["timeout"]
    assert "Medication/m1" not in _ids(data)
