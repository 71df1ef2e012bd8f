"""Feedback and the JWT replay cache in the database: the same tests on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cds.app import create_app
from cds.kb.loader import Knowledge
from cds.settings import Settings
from cds.store.sql import SqlStore, feedback, open_store, shown_cards
from tests.trust.conftest import (
    BASE_URL,
    ISS,
    PATIENT_VIEW_SERVICE,
    JwksServer,
    KeyPair,
    claims,
    patient_view_request,
    rejections,
    sign,
    write_clients,
)

FEEDBACK_PATH = f"/cds-services/{PATIENT_VIEW_SERVICE}/feedback"


@pytest.fixture
def store(db_settings: Settings) -> Iterator[SqlStore]:
    opened = open_store(db_settings)
    yield opened
    opened.close()


@pytest.fixture
def client(db_settings: Settings, knowledge: Knowledge) -> Iterator[TestClient]:
    with TestClient(create_app(db_settings, knowledge=knowledge)) as test_client:
        yield test_client


def feedback_rows(store: SqlStore) -> list[Any]:
    with store.engine.connect() as connection:
        return list(connection.execute(select(feedback).order_by(feedback.c.id)))


def overridden(card: str, **extra: Any) -> dict[str, Any]:
    return {
        "card": card,
        "outcome": "overridden",
        "overrideReason": {
            "reason": {
                "system": "http://example.org/override-reasons",
                "code": "not-clinically-relevant",
                "display": "Not clinically relevant for this patient",
            },
            "userComment": "seen by oncology last week",
        },
        "outcomeTimestamp": "2026-03-01T10:15:00Z",
        **extra,
    }


def test_the_same_feedback_posted_twice_is_stored_once(client: TestClient, store: SqlStore) -> None:
    body = {"feedback": [overridden("card-1")]}
    first = client.post(FEEDBACK_PATH, json=body)
    second = client.post(FEEDBACK_PATH, json=body)
    assert first.status_code == second.status_code == 200
    assert first.json() == {"received": 1, "new": 1}
    assert second.json() == {"received": 1, "new": 0}
    doubled = client.post(FEEDBACK_PATH, json={"feedback": [overridden("card-2")] * 2})
    assert doubled.json() == {"received": 2, "new": 1}
    assert [row.card_uuid for row in feedback_rows(store)] == ["card-1", "card-2"]


def test_a_later_report_on_the_same_card_is_a_new_item(client: TestClient, store: SqlStore) -> None:
    client.post(FEEDBACK_PATH, json={"feedback": [overridden("card-1")]})
    later = overridden("card-1", outcomeTimestamp="2026-03-02T09:00:00Z")
    assert client.post(FEEDBACK_PATH, json={"feedback": [later]}).json()["new"] == 1
    assert len(feedback_rows(store)) == 2


def test_every_field_is_persisted_and_joined_to_the_card(
    client: TestClient, store: SqlStore
) -> None:
    call = patient_view_request(hook_instance="b3c1a1f6-3f0e-4c62-8c1e-3d3c8c0b8e11")
    card = client.post(f"/cds-services/{PATIENT_VIEW_SERVICE}", json=call).json()["cards"][0]
    suggestion_ids = [s["uuid"] for s in card.get("suggestions", [])][:1] or ["sugg-1"]
    before = datetime.now(UTC)
    body = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": s} for s in suggestion_ids],
                "outcomeTimestamp": "2026-03-01T10:15:00+01:00",
            },
            overridden("card-from-elsewhere"),
        ]
    }
    assert client.post(FEEDBACK_PATH, json=body).json() == {"received": 2, "new": 2}
    accepted, other = feedback_rows(store)
    assert accepted.service_id == PATIENT_VIEW_SERVICE
    assert accepted.hook_instance == call["hookInstance"]
    assert accepted.outcome == "accepted"
    assert orjson.loads(accepted.accepted_suggestions) == suggestion_ids
    assert accepted.override_code is None
    outcome_at = accepted.outcome_at.replace(tzinfo=accepted.outcome_at.tzinfo or UTC)
    assert outcome_at == datetime(2026, 3, 1, 9, 15, tzinfo=UTC)
    received = accepted.received_at.replace(tzinfo=accepted.received_at.tzinfo or UTC)
    assert before - timedelta(seconds=1) <= received <= datetime.now(UTC)
    assert other.hook_instance is None  # a card we never showed
    assert other.override_code == "not-clinically-relevant"
    assert other.override_system == "http://example.org/override-reasons"
    assert other.override_display == "Not clinically relevant for this patient"
    assert other.override_comment == "seen by oncology last week"
    with store.engine.connect() as connection:
        shown = connection.execute(select(shown_cards)).one()
    assert shown.card_uuid == card["uuid"]
    assert shown.hook_instance == call["hookInstance"]
    assert shown.patient_key is not None
    assert "p1" not in shown.patient_key  # a keyed hash, never the id


def test_the_replay_cache_remembers_until_expiry(store: SqlStore) -> None:
    now = datetime.now(UTC)
    assert store.remember_jti("k", now + timedelta(minutes=5), now) is True
    assert store.remember_jti("k", now + timedelta(minutes=5), now) is False
    assert store.remember_jti("other", now + timedelta(minutes=5), now) is True
    later = now + timedelta(minutes=6)  # the first token has expired: its id may come back
    assert store.remember_jti("k", later + timedelta(minutes=5), later) is True
    assert store.remember_jti("k", later + timedelta(minutes=5), later) is False


def test_a_token_replayed_against_another_replica_is_refused(
    db_settings: Settings,
    knowledge: Knowledge,
    jwks_server: JwksServer,
    ec_key: KeyPair,
) -> None:
    url = jwks_server.publish("/jwks.json", ec_key)
    path = write_clients(
        db_settings.data_dir.parent / "clients.yaml", [{"iss": ISS, "jwks_url": url}]
    )
    settings = db_settings.model_copy(
        update={"trusted_clients_file": path, "public_base_url": BASE_URL}
    )
    token = sign(ec_key, claims(f"{BASE_URL}/cds-services"))
    headers = {"Authorization": f"Bearer {token}"}
    with (
        TestClient(create_app(settings, knowledge=knowledge)) as replica_a,
        TestClient(create_app(settings, knowledge=knowledge)) as replica_b,
    ):
        assert replica_a.get("/cds-services", headers=headers).status_code == 200
        assert replica_b.get("/cds-services", headers=headers).status_code == 401
        assert rejections(replica_b) == {"replayed_jti": 1.0}


def test_feedback_counts_are_consistent_under_concurrent_duplicates(
    client: TestClient, store: SqlStore
) -> None:
    import concurrent.futures

    body = {"feedback": [overridden(f"card-{i}") for i in range(20)]}
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: client.post(FEEDBACK_PATH, json=body), range(4)))
    assert all(a.status_code == 200 for a in answers)
    assert sum(a.json()["new"] for a in answers) == 20
    with store.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(feedback)).scalar() == 20
