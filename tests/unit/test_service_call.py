"""The service call on its own (no app): the request checks, draft orders, the patient key,
required prefetch, and what the call reads from and writes to a store."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cds.call.service_call import CallResult, draft_orders_of, patient_key, run_offline, run_service
from cds.errors import BadRequest, PrefetchUnavailable
from cds.kb.loader import Knowledge, Service
from cds.protocol.wire import FeedbackItem, HookRequest
from cds.settings import Settings
from cds.store.call_log import NO_CALL_LOG, StoreCallLog
from cds.store.protocol import CallRecord, CardHistory, ShownCard, WithheldCard
from tests.hook_services import service_for, with_every_hook
from tests.trust.conftest import patient_view_request

NOW = datetime.now(UTC)
ORDER = {"resourceType": "ServiceRequest", "id": "o1", "status": "draft"}
OTHER = {"resourceType": "MedicationRequest", "id": "m1", "status": "draft"}


def _drafts(*entries: Any) -> dict[str, Any]:
    return {"resourceType": "Bundle", "entry": list(entries)}


# --- draft orders --------------------------------------------------------------------------------


def test_draft_orders_are_read_only_at_the_order_hooks() -> None:
    context = {"draftOrders": _drafts({"resource": ORDER})}
    assert draft_orders_of("patient-view", context) == []
    assert draft_orders_of("order-sign", context) == [ORDER]


@pytest.mark.parametrize(
    "draft_orders",
    [None, [], "Bundle", {"entry": "none"}, {"entry": [1, {"resource": "x"}, {"fullUrl": "u"}]}],
)
def test_draft_orders_of_the_wrong_shape_are_no_orders(draft_orders: Any) -> None:
    assert draft_orders_of("order-sign", {"draftOrders": draft_orders}) == []


def test_order_sign_takes_every_draft_whatever_is_selected() -> None:
    context = {
        "draftOrders": _drafts({"resource": ORDER}, {"resource": OTHER}),
        "selections": ["ServiceRequest/o1"],
    }
    assert draft_orders_of("order-sign", context) == [ORDER, OTHER]


def test_order_select_takes_the_selected_drafts() -> None:
    context = {
        "draftOrders": _drafts({"resource": ORDER}, {"resource": OTHER}),
        "selections": ["MedicationRequest/m1", 7, "Patient/p1"],
    }
    assert draft_orders_of("order-select", context) == [OTHER]


@pytest.mark.parametrize("selections", [None, [], "ServiceRequest/o1"])
def test_order_select_without_a_usable_selection_takes_every_draft(selections: Any) -> None:
    context = {"draftOrders": _drafts({"resource": ORDER}, {"resource": OTHER})}
    context["selections"] = selections
    assert draft_orders_of("order-select", context) == [ORDER, OTHER]


# --- the patient key -----------------------------------------------------------------------------


def test_the_patient_key_is_a_keyed_hash_of_the_id() -> None:
    key = patient_key("patient-4711", "secret")
    assert key == patient_key("patient-4711", "secret")
    assert len(key) == 64
    assert int(key, 16) >= 0
    assert "4711" not in key
    assert key != patient_key("patient-4712", "secret")
    assert key != patient_key("patient-4711", "another secret")


# --- the request checks --------------------------------------------------------------------------


def _patient_view(knowledge: Knowledge) -> Service:
    return service_for(knowledge, "patient-view")


def test_a_request_for_another_hook_is_400(knowledge: Knowledge) -> None:
    body = patient_view_request() | {"hook": "encounter-start"}
    with pytest.raises(BadRequest, match="answers the patient-view hook") as raised:
        run_offline(_patient_view(knowledge), body, knowledge=knowledge, now=NOW)
    assert raised.value.expression == ["hook"]


@pytest.mark.parametrize("patient_id", [None, "", 42])
def test_a_request_without_a_patient_id_is_400(knowledge: Knowledge, patient_id: Any) -> None:
    body = patient_view_request()
    body["context"]["patientId"] = patient_id
    with pytest.raises(BadRequest) as raised:
        run_offline(_patient_view(knowledge), body, knowledge=knowledge, now=NOW)
    assert raised.value.expression == ["context.patientId"]


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_an_order_hook_without_draft_orders_is_400(knowledge: Knowledge, hook: str) -> None:
    every = with_every_hook(knowledge)
    body = {"hook": hook, "hookInstance": "h", "context": {"patientId": "p1", "userId": "u"}}
    with pytest.raises(BadRequest) as raised:
        run_offline(service_for(every, hook), body, knowledge=every, now=NOW)
    assert raised.value.expression == ["context.draftOrders"]


def test_required_prefetch_missing_without_a_fhir_server_is_412(knowledge: Knowledge) -> None:
    body = patient_view_request()
    del body["prefetch"]["patient"]
    with pytest.raises(PrefetchUnavailable, match="no fhirServer in the request") as raised:
        run_offline(_patient_view(knowledge), body, knowledge=knowledge, now=NOW)
    assert raised.value.expression == ["prefetch.patient"]


# --- the store -----------------------------------------------------------------------------------


class RecordingStore:
    """A Store (not the in-memory call store): the call reaches it through a worker thread."""

    def __init__(self, history: dict[str, CardHistory] | None = None) -> None:
        self.history = history or {}
        self.asked: list[tuple[str, list[str], datetime, datetime]] = []
        self.shown: list[ShownCard] = []
        self.calls: list[tuple[CallRecord, list[WithheldCard]]] = []

    def ping(self) -> None:
        return None

    def record_cards(self, cards: Sequence[ShownCard]) -> None:
        self.shown.extend(cards)

    def save_feedback(
        self, service_id: str, items: Sequence[FeedbackItem], received_at: datetime
    ) -> int:
        raise AssertionError("a call stores no feedback")

    def card_history(
        self,
        patient_key: str,
        keys: Collection[str],
        shown_since: datetime,
        feedback_since: datetime,
    ) -> dict[str, CardHistory]:
        self.asked.append((patient_key, list(keys), shown_since, feedback_since))
        return {key: self.history[key] for key in keys if key in self.history}

    def record_call(self, call: CallRecord, withheld: Sequence[WithheldCard]) -> None:
        self.calls.append((call, list(withheld)))

    def close(self) -> None:
        return None


def _call(knowledge: Knowledge, store: RecordingStore | None) -> CallResult:
    settings = Settings(require_jwt=False, patient_hash_key="k", suppression_days=30)
    return asyncio.run(
        run_service(
            _patient_view(knowledge),
            HookRequest.model_validate(patient_view_request("hook-1")),
            knowledge=knowledge,
            settings=settings,
            fhir_transport=None,
            now=NOW,
            call_log=NO_CALL_LOG if store is None else StoreCallLog(store),
        )
    )


def test_each_card_shown_is_recorded_under_the_patient_key(knowledge: Knowledge) -> None:
    store = RecordingStore()
    result = _call(knowledge, store)
    assert result.cards, "the example patient gets a card"
    [(asked_key, keys, _, feedback_since)] = store.asked
    assert asked_key == patient_key("p1", "k")
    assert keys == [f.key for f in result.findings]
    assert feedback_since == NOW - timedelta(days=30)
    assert [s.card_uuid for s in store.shown] == [c["uuid"] for c in result.cards]
    assert [s.rule_id for s in store.shown] == keys
    assert all(s.fingerprint for s in store.shown)
    assert {(s.patient_key, s.hook, s.hook_instance, s.shown_at) for s in store.shown} == {
        (asked_key, "patient-view", "hook-1", NOW)
    }
    [(call, withheld)] = store.calls
    assert (call.hook_instance, call.cards, withheld) == ("hook-1", len(result.cards), [])


def _shown_once(knowledge: Knowledge) -> ShownCard:
    store = RecordingStore()
    _call(knowledge, store)
    return next(s for s in store.shown if s.indicator == "warning")


def test_a_card_dismissed_for_the_same_facts_is_withheld_and_logged(knowledge: Knowledge) -> None:
    first = _shown_once(knowledge)
    assert first.fingerprint is not None
    history = {first.rule_id: CardHistory(last_shown={}, suppressed=frozenset({first.fingerprint}))}
    store = RecordingStore(history)
    result = _call(knowledge, store)
    assert first.rule_id not in [f.key for f in result.findings]
    [(_, withheld)] = store.calls
    assert [(w.rule_id, w.reason) for w in withheld] == [(first.rule_id, "suppressed")]
    assert first.rule_id not in [s.rule_id for s in store.shown]


def test_a_warning_shown_an_hour_ago_is_not_repeated(knowledge: Knowledge) -> None:
    first = _shown_once(knowledge)
    assert first.fingerprint is not None
    history = {first.rule_id: CardHistory(last_shown={first.fingerprint: NOW - timedelta(hours=1)})}
    result = _call(knowledge, RecordingStore(history))
    assert first.rule_id not in [f.key for f in result.findings]
    # a dismissal of other facts, or a showing of them, does not hold this card back
    other = {first.rule_id: CardHistory(last_shown={"other": NOW}, suppressed=frozenset({"x"}))}
    assert first.rule_id in [f.key for f in _call(knowledge, RecordingStore(other)).findings]


def test_the_answer_is_the_same_without_a_store(knowledge: Knowledge) -> None:
    with_store = _call(knowledge, RecordingStore())
    without = _call(knowledge, None)
    assert [f.rule.id for f in without.fired] == [f.rule.id for f in with_store.fired]
    assert without.wire() == {"cards": without.cards}
    assert without.response.cards[0].summary == without.cards[0]["summary"]
