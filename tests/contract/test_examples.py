"""Contract tests over the published CDS Hooks examples (HL7 spec, AHRQ, HAPI, sandbox).

Every request example is decided per file (``REQUESTS``): the exact status it gets from the
rule-less protocol service on its hook, and why. Then each valid request is sent again with
its own data translated to our prefetch keys, to every service on its hook (the shipped rules
included), and must answer 200 with a response our strict models accept. Feedback examples are
accepted; the spec's response examples parse with our models where they are valid.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pytest

from cds.kb.loader import Service
from cds.protocol.wire import (
    Action,
    CdsResponse,
    DiscoveryResponse,
    FeedbackRequest,
    OverrideReason,
    dump_model,
)
from tests.contract.conftest import ContractApp
from tests.hook_services import protocol_service_id

pytestmark = pytest.mark.shared

HOOK_INSTANCE = "5c8f3f4e-9d2a-4e1b-8f00-c0ffee000001"


class Expect(NamedTuple):
    status: int
    says: str | None  # text in the OperationOutcome's diagnostics
    why: str


_HTTP = Expect(412, "must use https", "plain-http fhirServer off loopback is refused; no prefetch")
_NO_SERVER = Expect(412, "no fhirServer in the request", "context only: no prefetch, no server")
_REFUSED = Expect(
    412, "could not be reached", "https fhirServer is tried (with its token) and down"
)
_OK = Expect(200, None, "the patient key is prefetched")

REQUESTS: dict[str, Expect] = {
    "ahrq-cql-services/examples__hooks__R4__Adolfo777_Braun514.json": _HTTP,
    "ahrq-cql-services/examples__hooks__R4__Adrian111_Wunsch504.json": _HTTP,
    "ahrq-cql-services/examples__hooks__R4__Cher186_Crooks415.json": _HTTP,
    "ahrq-cql-services/examples__hooks__R4__Debora709_Mayer370.json": _HTTP,
    "ahrq-cql-services/examples__hooks__R4__unhealthy_patient.json": _HTTP,
    "ahrq-cql-services/fixtures__hooks-patients__R4__active_person_invocation.json": _HTTP,
    "ahrq-cql-services/fixtures__hooks-patients__R4__lazy_person_invocation.json": _HTTP,
    "ahrq-cql-services/fixtures__hooks-patients__R4__missing_prefetch_keys_invocation.json": _HTTP,
    "ahrq-cql-services/fixtures__hooks-patients__R4__null_prefetch_values_invocation.json": _HTTP,
    "hapi-fhir-cds-hooks/ASLPCrdServiceRequest.json": _REFUSED,
    "hapi-fhir-cds-hooks/CdsServiceRequestJson.json": Expect(
        400, "hookInstance", "HAPI's placeholder: no hookInstance and hook 'Hook Name'"
    ),
    "hl7-cds-hooks-spec/order-select-context-r4.json": _NO_SERVER,
    "hl7-cds-hooks-spec/order-sign-context-r4.json": _NO_SERVER,
    "hl7-cds-hooks-spec/patient-view-context-1.json": _NO_SERVER,
    "hl7-cds-hooks-spec/patient-view-context-2.json": _NO_SERVER,
    "hl7-cds-hooks-spec/request-patient-view-with-prefetch-and-fhirAuthorization.json": _HTTP,
    "hl7-cds-hooks-spec/request-prefetch-data.json": _OK,
    "hl7-cds-hooks-spec/request-prefetch-pagination.json": _REFUSED,
    "hl7-cds-hooks-spec/request-with-extension.json": Expect(
        400, "context.patientId", "the spec's extension example has no patientId in context"
    ),
    "sandbox-captured/order-select-request.json": _OK,
    "sandbox-captured/order-sign-request.json": _OK,
    "sandbox-captured/patient-view-request.json": _OK,
}
# Hooks of the files that are not whole requests (context-only or prefetch-only fragments).
FRAGMENT_HOOKS = {
    "hl7-cds-hooks-spec/order-select-context-r4.json": "order-select",
    "hl7-cds-hooks-spec/order-sign-context-r4.json": "order-sign",
    "hl7-cds-hooks-spec/patient-view-context-1.json": "patient-view",
    "hl7-cds-hooks-spec/patient-view-context-2.json": "patient-view",
    "hl7-cds-hooks-spec/request-prefetch-data.json": "patient-view",
}
FEEDBACK = [
    "ahrq-cql-services/examples__hooks__R4__feedback.json",
    "ahrq-cql-services/fixtures__hooks-feedback__feedbackFor2.json",
    "hl7-cds-hooks-spec/feedback-accepted.json",
    "hl7-cds-hooks-spec/feedback-overridden-no-reason.json",
    "hl7-cds-hooks-spec/feedback-overridden-with-reason.json",
]
VALID_RESPONSES = [
    "hl7-cds-hooks-spec/response-cards-basic.json",
    "hl7-cds-hooks-spec/response-cards-full-example.json",
    "sandbox-captured/sandbox-cds-services-cms-price-check-response.json",
    "sandbox-captured/sandbox-cds-services-patient-greeting-response.json",
]
# Published examples that break CDS Hooks 2.0.1 (REQUIRED fields missing): we must refuse them.
INVALID_RESPONSES = {
    "hl7-cds-hooks-spec/response-cards-autolaunchable.json": "cards.0.indicator",
    "hl7-cds-hooks-spec/response-system-actions.json": "systemActions.0.description",
    "hapi-fhir-cds-hooks/CdsServiceResponseJson.json": "cards.0.summary",
}


def _load(examples: Path, name: str) -> Any:
    return json.loads((examples / name).read_text(encoding="utf-8"))


def _is_request(data: Any) -> bool:
    return isinstance(data, dict) and ("context" in data or "hookInstance" in data)


def _request(examples: Path, name: str) -> dict[str, Any]:
    """The example as a request body; fragments are wrapped with a hook and hookInstance."""
    data = _load(examples, name)
    if name not in FRAGMENT_HOOKS:
        assert isinstance(data, dict)
        return data
    body: dict[str, Any] = {"hook": FRAGMENT_HOOKS[name], "hookInstance": HOOK_INSTANCE, **data}
    if "context" not in body:  # prefetch only: the context of the patient it holds
        patient = body["prefetch"]["patient"]
        body["context"] = {"patientId": patient.get("id", "example"), "userId": "Practitioner/1"}
    return body


def _target(app: ContractApp, body: dict[str, Any]) -> str:
    hook = body.get("hook")
    known = {s.spec.hook for s in app.knowledge.services.values()}
    return protocol_service_id(hook if hook in known else "patient-view")


def check_response(body: Any) -> CdsResponse:
    """Our strict models accept it; no null or empty element; every card well formed."""
    parsed = CdsResponse.model_validate(body)
    assert _empties(body) == []
    ids: list[str] = []
    for card in body["cards"]:
        assert len(card["summary"]) < 140
        ids.append(card["uuid"])
        if card.get("suggestions"):
            assert card["selectionBehavior"] in ("at-most-one", "any")
            ids += [s["uuid"] for s in card["suggestions"]]
        else:
            assert "selectionBehavior" not in card
    for value in ids:
        assert str(uuid.UUID(value)) == value
    assert len(ids) == len(set(ids))
    return parsed


def _empties(value: Any, path: str = "$") -> list[str]:
    if value is None or (value in ([], {}) and path != "$.cards"):
        return [path]
    if isinstance(value, dict):
        return [bad for k, v in value.items() for bad in _empties(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [bad for i, v in enumerate(value) for bad in _empties(v, f"{path}[{i}]")]
    return []


# --- every request example, as published ----------------------------------------------------------


def test_every_request_example_is_decided(examples: Path) -> None:
    """A new request example in ../shared must get its own line in REQUESTS."""
    found = {
        str(path.relative_to(examples))
        for path in examples.glob("*/*.json")
        if _is_request(json.loads(path.read_text(encoding="utf-8")))
    }
    found.add("hl7-cds-hooks-spec/request-prefetch-data.json")
    assert found == set(REQUESTS)


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_request_example_as_published(examples: Path, contract_app: ContractApp, name: str) -> None:
    expect = REQUESTS[name]
    body = _request(examples, name)
    response = contract_app.client.post(f"/cds-services/{_target(contract_app, body)}", json=body)
    assert response.status_code == expect.status, f"{expect.why}: {response.text}"
    if expect.status == 200:
        check_response(response.json())
    else:
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert expect.says in outcome["issue"][0]["diagnostics"]
        assert outcome["issue"][0]["code"] == {400: "invalid", 412: "incomplete"}[expect.status]
    # Any fetch went to the request's own fhirServer, with its own token or none.
    token = (body.get("fhirAuthorization") or {}).get("access_token")
    for url, authorization in contract_app.transport.attempts:
        server = body.get("fhirServer")
        assert server is not None
        assert urlsplit(url).netloc == urlsplit(server).netloc
        assert url.startswith(server.rstrip("/") + "/")
        assert authorization == (f"Bearer {token}" if token else None)
    if expect is _REFUSED:
        assert contract_app.transport.attempts, "the https fhirServer was tried"
    else:
        assert contract_app.transport.attempts == []


def test_request_examples_on_the_shipped_services(
    examples: Path, contract_app: ContractApp
) -> None:
    """The shipped services agree with the protocol service, or need a key the example lacks."""
    checked = 0
    for name, expect in sorted(REQUESTS.items()):
        body = _request(examples, name)
        for service in contract_app.knowledge.services_for(str(body.get("hook"))):
            if service.spec.id == protocol_service_id(service.spec.hook):
                continue
            response = contract_app.client.post(f"/cds-services/{service.spec.id}", json=body)
            checked += 1
            lacking = set(service.prefetch.templates()) - set(body.get("prefetch") or {})
            blocked = all(keys & lacking for keys in service.prefetch.rule_keys.values())
            if expect.status == 200 and lacking and blocked:
                assert response.status_code == 412, (name, response.text)
                assert "no rule can run" in response.json()["issue"][0]["diagnostics"]
            else:
                assert response.status_code == expect.status, (name, response.text)
            if response.status_code == 200:
                check_response(response.json())
    assert checked >= 10


# --- every valid request example, with its data as our prefetch ------------------------------


def _translated(body: dict[str, Any], service: Service) -> dict[str, Any]:
    """The request with the example's own resources under our keys, and no FHIR server.

    AHRQ's Synthea examples pair ``context.patientId`` '2-1' with prefetch for another id;
    the context is aligned with the one Patient they carry, so the rules see the data.
    """
    pool: list[dict[str, Any]] = []
    for value in (body.get("prefetch") or {}).values():
        if not isinstance(value, dict):
            continue
        if value.get("resourceType") == "Bundle":
            pool += [e["resource"] for e in value.get("entry") or () if "resource" in e]
        else:
            pool.append(value)
    context = dict(body["context"])
    patients = [r for r in pool if r.get("resourceType") == "Patient"]
    if len(patients) == 1 and patients[0].get("id"):
        context["patientId"] = patients[0]["id"]
    patient = next(
        (p for p in patients if p.get("id") == context["patientId"]),
        {"resourceType": "Patient", "id": context["patientId"]},
    )
    prefetch: dict[str, Any] = {}
    for key in service.prefetch.keys:
        if key.resource_type == "Patient":
            prefetch[key.name] = patient
        else:
            prefetch[key.name] = {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [
                    {"resource": r} for r in pool if r.get("resourceType") == key.resource_type
                ],
            }
    translated = {k: v for k, v in body.items() if k not in ("fhirServer", "fhirAuthorization")}
    return {**translated, "context": context, "prefetch": prefetch}


# Examples whose own data, once prefetched, is refused (cds/engine/record_guard.py): it is not
# R4, or not the context's patient. (issue type, text in the diagnostics, why)
REFUSED_DATA: dict[str, tuple[str, str, str]] = {
    "ahrq-cql-services/fixtures__hooks-patients__R4__lazy_person_invocation.json": (
        "not-supported",
        "Condition.clinicalStatus is a plain code string",
        "filed as R4, its Condition has STU3's string clinicalStatus and verificationStatus",
    ),
    "hapi-fhir-cds-hooks/ASLPCrdServiceRequest.json": (
        "invalid",
        "is about another patient than context.patientId",
        "context.patientId is 'Patient/123', the draft orders' subject Patient/positive",
    ),
}


@pytest.mark.parametrize("name", sorted(n for n, e in REQUESTS.items() if e.status != 400))
def test_request_example_with_its_data_prefetched(
    examples: Path, contract_app: ContractApp, name: str
) -> None:
    body = _request(examples, name)
    services = contract_app.knowledge.services_for(body["hook"])
    assert services
    refused = 0
    for service in services:
        request = _translated(body, service)
        response = contract_app.client.post(f"/cds-services/{service.spec.id}", json=request)
        if name in REFUSED_DATA and response.status_code == 400:
            # refused by the services whose prefetch holds the data at fault
            code, says, why = REFUSED_DATA[name]
            issue = response.json()["issue"][0]
            assert (issue["code"], says in issue["diagnostics"]) == (code, True), why
            refused += 1
            continue
        assert response.status_code == 200, (service.spec.id, response.text)
        check_response(response.json())
    assert (refused > 0) == (name in REFUSED_DATA)
    assert contract_app.transport.attempts == []


def test_sandbox_draft_medication_request_quirk_is_tolerated(
    examples: Path, contract_app: ContractApp
) -> None:
    body = _request(examples, "sandbox-captured/order-sign-request.json")
    draft = body["context"]["draftOrders"]["entry"][0]["resource"]
    assert isinstance(draft["category"], dict)  # the quirk is really in the capture
    response = contract_app.client.post(
        f"/cds-services/{protocol_service_id('order-sign')}", json=body
    )
    assert response.status_code == 200
    assert response.json() == {"cards": []}


# --- feedback ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FEEDBACK)
def test_feedback_example_is_accepted(examples: Path, contract_app: ContractApp, name: str) -> None:
    body = _load(examples, name)
    FeedbackRequest.model_validate(body)
    for service_id in contract_app.knowledge.services:
        url = f"/cds-services/{service_id}/feedback"
        first = contract_app.client.post(url, json=body)
        assert first.status_code == 200, first.text
        assert first.json()["received"] == len(body["feedback"])
        again = contract_app.client.post(url, json=body)
        assert again.status_code == 200
        assert again.json()["new"] == 0


# --- response, discovery and action examples -----------------------------------------------------


@pytest.mark.parametrize("name", VALID_RESPONSES)
def test_valid_response_examples_parse_with_our_models(examples: Path, name: str) -> None:
    data = _load(examples, name)
    parsed = CdsResponse.model_validate(data)
    dumped = dump_model(parsed)
    for original, card in zip(data["cards"], dumped["cards"], strict=True):
        if "uuid" not in original:  # optional in the spec; we give every card one
            assert uuid.UUID(card.pop("uuid"))
    assert dumped == data  # nothing else lost or added


@pytest.mark.parametrize(("name", "where"), sorted(INVALID_RESPONSES.items()))
def test_invalid_response_examples_are_refused(examples: Path, name: str, where: str) -> None:
    with pytest.raises(ValueError, match=where.replace(".", r"\.")):
        CdsResponse.model_validate(_load(examples, name))


@pytest.mark.parametrize(
    "name",
    [
        "hl7-cds-hooks-spec/discovery-response.json",
        "hl7-cds-hooks-spec/discovery-with-extension.json",
    ],
)
def test_discovery_examples_parse_with_our_models(examples: Path, name: str) -> None:
    data = _load(examples, name)
    assert dump_model(DiscoveryResponse.model_validate(data)) == data


@pytest.mark.parametrize("kind", ["create", "delete", "update"])
def test_action_examples_parse(examples: Path, kind: str) -> None:
    data = _load(examples, f"hl7-cds-hooks-spec/suggestion-action-{kind}.json")
    assert dump_model(Action.model_validate(data)) == data


def test_override_reason_examples_parse(examples: Path) -> None:
    data = _load(examples, "hl7-cds-hooks-spec/override-reasons.json")
    reasons = [OverrideReason.model_validate(r) for r in data["overrideReasons"]]
    assert [r.display for r in reasons] == ["Patient refused", "Contraindicated"]
