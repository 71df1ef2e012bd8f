"""Repeat limits, suppression by the same facts, critical never suppressed, silent mode: state
kept in the database (SQLite and PostgreSQL), through the app as an EHR calls it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cds.app import create_app
from cds.call.request_builder import request_from_resources
from cds.kb.loader import Knowledge
from cds.settings import Settings
from cds.store.sql import hook_calls, open_store, withheld_cards
from tests.burden.records import base, condition

SERVICE = "breast-cancer-followup-patient-view"


def _day(days_ago: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=days_ago)).isoformat()


@pytest.fixture
def client(db_settings: Settings, knowledge: Knowledge) -> Iterator[TestClient]:
    with TestClient(create_app(db_settings, knowledge=knowledge)) as test_client:
        yield test_client


def _open_chart(
    client: TestClient,
    knowledge: Knowledge,
    resources: list[dict[str, Any]],
    service_id: str = SERVICE,
) -> list[dict[str, Any]]:
    service = knowledge.services[service_id]
    body = request_from_resources(
        resources, service.prefetch, hook=service.spec.hook, hook_instance=str(uuid.uuid4())
    )
    response = client.post(f"/cds-services/{service_id}", json=body)
    assert response.status_code == 200, response.text
    cards: list[dict[str, Any]] = response.json()["cards"]
    return cards


def _keys(cards: list[dict[str, Any]]) -> list[str]:
    return [card["source"]["topic"]["code"] for card in cards]


def _override(client: TestClient, card: dict[str, Any], code: str) -> None:
    item = {
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": {
            "reason": {
                "system": "urn:cds:breast-cancer-followup:override-reason",
                "code": code,
                "display": code,
            }
        },
        "outcomeTimestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    response = client.post(f"/cds-services/{SERVICE}/feedback", json={"feedback": [item]})
    assert response.status_code == 200, response.text


def _metastatic(knowledge: Knowledge) -> list[dict[str, Any]]:
    return [*base(knowledge), condition(knowledge, "met", "bone-metastasis", _day(60))]


def _withheld(settings: Settings) -> list[tuple[str, str]]:
    store = open_store(settings)
    try:
        with store.engine.connect() as connection:
            return [
                (row.rule_id, row.reason)
                for row in connection.execute(select(withheld_cards).order_by(withheld_cards.c.id))
            ]
    finally:
        store.close()


def test_an_info_card_is_not_repeated_unless_its_facts_change(
    client: TestClient, knowledge: Knowledge, db_settings: Settings
) -> None:
    record = _metastatic(knowledge)
    first = _open_chart(client, knowledge, record)
    assert "metastatic-care-planning" in _keys(first)
    again = _open_chart(client, knowledge, record)
    assert "metastatic-care-planning" not in _keys(again)
    # a new fact (a second metastasis recorded) changes what fired it: shown again
    changed = [*record, condition(knowledge, "met-2", "bone-metastasis", _day(3))]
    assert "metastatic-care-planning" in _keys(_open_chart(client, knowledge, changed))
    client.app.state.runtime.store.flush()  # type: ignore[attr-defined]
    assert ("metastatic-care-planning", "repeat") in _withheld(db_settings)


def test_a_warning_repeats_after_a_day_not_before_and_a_critical_card_always(
    client: TestClient, knowledge: Knowledge
) -> None:
    pain = [*base(knowledge), condition(knowledge, "pain", "bone-pain", _day(5))]
    assert "bone-pain-after-breast-cancer" in _keys(_open_chart(client, knowledge, pain))
    assert "bone-pain-after-breast-cancer" not in _keys(_open_chart(client, knowledge, pain))
    cord = [
        *base(knowledge),
        condition(knowledge, "back", "back-pain", _day(10)),
        condition(knowledge, "cord", "spinal-cord-compression", _day(2)),
    ]
    for _ in range(3):
        assert _keys(_open_chart(client, knowledge, cord))[0] == "back-pain-with-neurologic-signs"


def test_feedback_suppresses_the_same_facts_only(client: TestClient, knowledge: Knowledge) -> None:
    pain = [*base(knowledge), condition(knowledge, "pain", "bone-pain", _day(5))]
    (card,) = [c for c in _open_chart(client, knowledge, pain) if c["indicator"] == "warning"]
    _override(client, card, "already-addressed")
    newer = [*pain, condition(knowledge, "pain-2", "bone-pain", _day(1))]
    # the same facts stay hidden (beyond the one-day repeat limit too: suppressed) ...
    assert "bone-pain-after-breast-cancer" not in _keys(_open_chart(client, knowledge, pain))
    # ... a new triggering record fires again
    assert "bone-pain-after-breast-cancer" in _keys(_open_chart(client, knowledge, newer))


def test_a_critical_card_is_never_suppressed_by_feedback(
    client: TestClient, knowledge: Knowledge
) -> None:
    cord = [
        *base(knowledge),
        condition(knowledge, "back", "back-pain", _day(10)),
        condition(knowledge, "cord", "spinal-cord-compression", _day(2)),
    ]
    critical = _open_chart(client, knowledge, cord)[0]
    assert critical["indicator"] == "critical"
    for reason in ("already-addressed", "other-plan"):
        _override(client, critical, reason)
        assert _keys(_open_chart(client, knowledge, cord))[0] == "back-pain-with-neurologic-signs"


def test_silent_rules_are_evaluated_and_logged_not_returned(
    db_settings: Settings, knowledge: Knowledge
) -> None:
    settings = db_settings.model_copy(
        update={
            "silent_rules": "metastatic-without-palliative-care,bone-metastasis-without-bone-agent"
        }
    )
    with TestClient(create_app(settings, knowledge=knowledge)) as client:
        cards = _open_chart(client, knowledge, _metastatic(knowledge))
        client.app.state.runtime.store.flush()  # type: ignore[attr-defined]
    keys = _keys(cards)
    assert "metastatic-without-palliative-care" not in keys
    assert "bone-metastasis-without-bone-agent" not in keys
    assert "metastatic-care-planning" in keys  # the other two still merge
    withheld = _withheld(db_settings)
    assert ("metastatic-without-palliative-care", "silent") in withheld
    assert ("bone-metastasis-without-bone-agent", "silent") in withheld


def test_all_rules_silent_returns_no_card_but_counts_the_chart_open(
    db_settings: Settings, knowledge: Knowledge
) -> None:
    settings = db_settings.model_copy(update={"silent_rules": "all"})
    with TestClient(create_app(settings, knowledge=knowledge)) as client:
        assert _open_chart(client, knowledge, _metastatic(knowledge)) == []
        client.app.state.runtime.store.flush()  # type: ignore[attr-defined]
    assert {reason for _, reason in _withheld(db_settings)} == {"silent"}
    store = open_store(db_settings)
    try:
        with store.engine.connect() as connection:
            (calls,) = connection.execute(select(hook_calls)).all()
    finally:
        store.close()
    assert calls.cards == 0


def test_education_is_shown_once_then_again_after_a_metastasis(
    client: TestClient, knowledge: Knowledge
) -> None:
    visit = "breast-cancer-followup-encounter-start"
    record = base(knowledge)
    assert "when-to-call-education" in _keys(_open_chart(client, knowledge, record, visit))
    assert "when-to-call-education" not in _keys(_open_chart(client, knowledge, record, visit))
    spread = _metastatic(knowledge)
    assert "when-to-call-education" in _keys(_open_chart(client, knowledge, spread, visit))
    assert "when-to-call-education" not in _keys(_open_chart(client, knowledge, spread, visit))
