"""Wire models: what we emit is strict, what we receive is tolerant."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from cds.protocol.wire import (
    Action,
    Card,
    CdsResponse,
    DiscoveryResponse,
    FeedbackRequest,
    HookRequest,
    Link,
    ServiceDescriptor,
    Source,
    Suggestion,
    dump_model,
)


def _walk(value: Any, path: str = "$") -> list[str]:
    """Every place in a JSON value that holds null or an empty array/object."""
    bad: list[str] = []
    if value is None or value in ([], {}):
        return [path]
    if isinstance(value, dict):
        for key, item in value.items():
            bad += _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            bad += _walk(item, f"{path}[{index}]")
    return bad


def _card(**overrides: Any) -> Card:
    fields: dict[str, Any] = {
        "summary": "Evaluate new bone pain",
        "indicator": "warning",
        "source": Source(label="Breast cancer follow-up"),
    }
    fields.update(overrides)
    return Card(**fields)


# --- strict emit ------------------------------------------------------------------------------


def test_dump_drops_nulls_and_empty_optional_arrays() -> None:
    response = CdsResponse(cards=[_card()])
    wire = dump_model(response)
    card = wire["cards"][0]
    assert set(card) == {"uuid", "summary", "indicator", "source"}
    assert _walk(wire) == []
    assert "systemActions" not in wire


def test_dump_keeps_an_empty_cards_array() -> None:
    assert dump_model(CdsResponse()) == {"cards": []}


def test_dump_uses_camel_case_aliases() -> None:
    card = _card(
        suggestions=[Suggestion(label="Order a bone scan", is_recommended=True)],
        selection_behavior="at-most-one",
        links=[Link(label="Open app", url="https://app.example/launch", type="smart")],
    )
    wire = dump_model(CdsResponse(cards=[card]))["cards"][0]
    assert wire["selectionBehavior"] == "at-most-one"
    assert wire["suggestions"][0]["isRecommended"] is True
    assert "actions" not in wire["suggestions"][0]  # empty optional array dropped
    assert _walk(wire) == []


def test_every_card_and_suggestion_gets_its_own_uuid() -> None:
    cards = [
        _card(suggestions=[Suggestion(label="a"), Suggestion(label="b")], selection_behavior="any")
        for _ in range(3)
    ]
    ids = [c.uuid for c in cards] + [s.uuid for c in cards for s in c.suggestions]
    assert len(set(ids)) == len(ids) == 9
    for value in ids:
        assert str(uuid.UUID(value)) == value


@pytest.mark.parametrize(("length", "ok"), [(139, True), (140, False), (0, False)])
def test_summary_is_shorter_than_140_characters(length: int, ok: bool) -> None:
    if ok:
        assert len(_card(summary="x" * length).summary) == length
    else:
        with pytest.raises(ValidationError, match="summary"):
            _card(summary="x" * length)


def test_suggestions_require_selection_behavior() -> None:
    with pytest.raises(ValidationError, match="selectionBehavior is required"):
        _card(suggestions=[Suggestion(label="Order a bone scan")])


@pytest.mark.parametrize("behavior", ["at-most-one", "any"])
def test_selection_behavior_is_dropped_without_suggestions(behavior: str) -> None:
    wire = dump_model(_card(selection_behavior=behavior))
    assert "selectionBehavior" not in wire


def test_unknown_selection_behavior_is_refused() -> None:
    with pytest.raises(ValidationError):
        _card(suggestions=[Suggestion(label="x")], selection_behavior="all")


@pytest.mark.parametrize(
    "overrides",
    [
        {"indicator": "hard-stop"},
        {"source": {"label": ""}},
        {"summary": "ok", "extra_field": 1},
        {"links": [{"label": "x", "url": "https://a.example", "appContext": "c"}]},
    ],
    ids=["indicator", "empty-source-label", "unknown-field", "appContext-on-absolute-link"],
)
def test_emitted_models_refuse_what_the_spec_does_not_allow(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _card(**overrides)


def test_action_type_is_checked() -> None:
    order = {"resourceType": "ServiceRequest", "status": "draft"}
    assert Action(type="create", description="Create the order", resource=order).type == "create"
    assert Action(type="delete", description="Remove it", resource_id="ServiceRequest/1")
    with pytest.raises(ValidationError):
        Action(type="upsert", description="x")


@pytest.mark.parametrize("kind", ["create", "update"])
def test_create_and_update_actions_need_the_resource(kind: str) -> None:
    with pytest.raises(ValidationError, match=f"a {kind} action needs the resource"):
        Action(type=kind, description="x")


def test_extension_is_the_one_extra_field_emitted_models_take() -> None:
    card = _card(extension={"org.example.rank": 1})
    assert dump_model(card)["extension"] == {"org.example.rank": 1}
    with pytest.raises(ValidationError):
        _card(extensions={"org.example.rank": 1})


def test_discovery_document_omits_empty_prefetch_and_nulls() -> None:
    document = DiscoveryResponse(
        services=[ServiceDescriptor(hook="patient-view", id="svc", description="d")]
    )
    assert dump_model(document) == {
        "services": [{"hook": "patient-view", "id": "svc", "description": "d"}]
    }


# --- tolerant parse ---------------------------------------------------------------------------


def _request(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"patientId": "1288992", "userId": "Practitioner/example"},
    }
    body.update(overrides)
    return body


def test_unknown_fields_and_extension_are_accepted() -> None:
    request = HookRequest.model_validate(
        _request(
            extension={"com.example.timestamp": "2017-11-27T22:13:25Z"},
            somethingNew={"nested": [1, 2]},
            context={"patientId": "1", "com.example.flag": True},
        )
    )
    assert request.extension == {"com.example.timestamp": "2017-11-27T22:13:25Z"}
    assert request.context["com.example.flag"] is True


def test_sandbox_draft_medication_request_quirks_parse() -> None:
    # The sandbox sends category and reasonCode as single objects (R4 wants arrays).
    draft = {
        "resourceType": "MedicationRequest",
        "id": "request-123",
        "status": "draft",
        "intent": "order",
        "category": {"coding": [{"code": "community"}]},
        "reasonCode": {"coding": [{"code": "1234"}]},
        "medicationCodeableConcept": {"coding": [{"code": "199224"}]},
    }
    request = HookRequest.model_validate(
        _request(
            hook="order-sign",
            context={
                "patientId": "1",
                "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": draft}]},
            },
        )
    )
    assert request.context["draftOrders"]["entry"][0]["resource"]["category"] == draft["category"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"hook": "patient-view", "context": {}}, "hookInstance"),
        (_request(context=[1]), "context"),
        (_request(context=None), "context"),
        (_request(hookInstance=""), "hookInstance"),
        (_request(prefetch=["not", "an", "object"]), "prefetch"),
        (_request(fhirAuthorization={"access_token": "t", "token_type": "Bearer"}), "fhirServer"),
        (
            _request(fhirServer="https://ehr.example", fhirAuthorization={"token_type": "Bearer"}),
            "access_token",
        ),
    ],
    ids=[
        "no-hookInstance",
        "context-list",
        "context-null",
        "empty-hookInstance",
        "prefetch-list",
        "token-without-server",
        "authorization-without-token",
    ],
)
def test_wrong_shapes_are_refused(body: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError, match=where):
        HookRequest.model_validate(body)


def test_access_token_never_appears_in_repr_or_errors() -> None:
    secret = "s3cr3t-token-value"
    request = HookRequest.model_validate(
        _request(
            fhirServer="https://ehr.example/fhir",
            fhirAuthorization={"access_token": secret, "token_type": "Bearer", "scope": "x"},
        )
    )
    assert secret not in repr(request)
    assert request.fhir_authorization is not None
    assert secret not in repr(request.fhir_authorization)
    assert secret not in str(request.fhir_authorization)


# --- feedback ---------------------------------------------------------------------------------


def _feedback(**item: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "card": "9368d37b-283f-44a0-93ea-547cebab93ed",
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}],
        "outcomeTimestamp": "2020-12-11T00:00:00Z",
    }
    base.update(item)
    return {"feedback": [base]}


def test_feedback_with_override_reason_coding_extras_is_accepted() -> None:
    parsed = FeedbackRequest.model_validate(
        _feedback(
            outcome="overridden",
            acceptedSuggestions=[],
            overrideReason={
                "reason": {"system": "http://example.org", "code": "x", "userSelected": True},
                "userComment": "seen elsewhere",
            },
        )
    )
    reason = parsed.feedback[0].override_reason
    assert reason is not None
    assert reason.reason is not None
    assert reason.reason.code == "x"


@pytest.mark.parametrize(
    "item",
    [
        {"outcome": "ignored"},
        {"outcomeTimestamp": "2020-12-11"},
        {"outcomeTimestamp": "2020-12-11T00:00:00"},
        {"outcomeTimestamp": "yesterday"},
        {"outcomeTimestamp": "2020-13-11T00:00:00Z"},
        {"outcomeTimestamp": "0001-01-01T00:00:00.0+01:00"},  # before the first UTC instant
        {"card": ""},
        {"outcome": "overridden"},  # still has acceptedSuggestions
        {"overrideReason": {"userComment": "x"}},  # accepted with a reason
    ],
)
def test_malformed_feedback_is_refused(item: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FeedbackRequest.model_validate(_feedback(**item))


def test_empty_feedback_list_is_refused() -> None:
    with pytest.raises(ValidationError):
        FeedbackRequest.model_validate({"feedback": []})
