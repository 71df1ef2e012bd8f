"""The hook path's database front: cards written behind, suppression answered from memory."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import OperationalError

from cds.app import create_app
from cds.call.request_builder import bundle_resources, request_from_resources
from cds.errors import ServiceUnavailable
from cds.fhir.scenarios import example_patients
from cds.kb.loader import Knowledge
from cds.protocol.wire import FeedbackItem
from cds.settings import Settings
from cds.store.protocol import ShownCard, Store
from cds.store.sql import SqlStore, feedback, open_store, shown_cards
from cds.store.write_behind import CallStore

NOW = datetime.now(UTC)
SUPPRESSING = ["already-addressed"]


def _card(uuid: str, rule: str = "rule-a", patient: str = "pk-1") -> ShownCard:
    return ShownCard(
        card_uuid=uuid,
        service_id="svc",
        rule_id=rule,
        rule_version="1.0.0",
        hook="patient-view",
        hook_instance="hi-1",
        indicator="warning",
        patient_key=patient,
        shown_at=NOW,
        fingerprint=f"fp-{rule}",
    )


def _suppressed(store: Store, patient: str, keys: list[str], since: datetime) -> set[str]:
    """Card keys of this patient dismissed with a suppressing reason since ``since``."""
    history = store.card_history(patient, keys, since, since)
    return {key for key, seen in history.items() if seen.suppressed}


def _received() -> datetime:
    """Feedback's receipt time is the real clock's, as in the route (refresh reads by it)."""
    return datetime.now(UTC)


def _override(card: str, code: str = "already-addressed", when: datetime = NOW) -> FeedbackItem:
    return FeedbackItem.model_validate(
        {
            "card": card,
            "outcome": "overridden",
            "overrideReason": {"reason": {"system": "urn:x", "code": code}},
            "outcomeTimestamp": when.isoformat(),
        }
    )


@pytest.fixture
def sql_store(tmp_path: Path) -> Iterator[SqlStore]:
    store = open_store(Settings(data_dir=tmp_path), SUPPRESSING)
    yield store
    store.close()


@pytest.fixture
def front(sql_store: SqlStore) -> Iterator[CallStore]:
    call_store = CallStore(sql_store, window_days=30, refresh_seconds=3600)
    call_store.start()
    yield call_store
    call_store.close()


def _rows(store: SqlStore) -> dict[str, str]:
    with store.engine.connect() as connection:
        return dict(
            connection.execute(select(shown_cards.c.card_uuid, shown_cards.c.rule_id)).all()
        )


def test_queued_cards_reach_the_database_by_flush(front: CallStore, sql_store: SqlStore) -> None:
    front.record_cards([_card("c1"), _card("c2", rule="rule-b")])
    front.record_cards([])
    front.flush()
    assert _rows(sql_store) == {"c1": "rule-a", "c2": "rule-b"}


def test_close_writes_what_is_still_queued(sql_store: SqlStore) -> None:
    call_store = CallStore(sql_store, window_days=30, refresh_seconds=3600)
    call_store.start()
    call_store.record_cards([_card(f"c{n}") for n in range(1200)])  # more than one batch
    call_store.close()
    assert len(_rows(sql_store)) == 1200


def test_feedback_through_the_front_finds_its_card_and_holds_it_back_at_once(
    front: CallStore, sql_store: SqlStore
) -> None:
    front.record_cards([_card("c1")])
    assert _suppressed(front, "pk-1", ["rule-a"], NOW - timedelta(days=30)) == set()
    assert front.save_feedback("svc", [_override("c1")], _received()) == 1
    with sql_store.engine.connect() as connection:
        (hook_instance,) = connection.execute(select(feedback.c.hook_instance)).one()
    assert hook_instance == "hi-1"  # the card was written before the feedback
    since = NOW - timedelta(days=30)
    assert _suppressed(front, "pk-1", ["rule-a", "rule-b"], since) == {"rule-a"}
    assert _suppressed(front, "pk-2", ["rule-a"], since) == set()
    assert _suppressed(front, "pk-1", ["rule-a"], NOW + timedelta(seconds=1)) == set()
    # the answer is the same as the database's own
    assert _suppressed(sql_store, "pk-1", ["rule-a", "rule-b"], since) == {"rule-a"}


def test_a_reason_that_does_not_suppress_does_not(front: CallStore) -> None:
    front.record_cards([_card("c1")])
    front.save_feedback("svc", [_override("c1", code="not-clinically-relevant")], _received())
    assert _suppressed(front, "pk-1", ["rule-a"], NOW - timedelta(days=30)) == set()


def test_feedback_given_elsewhere_applies_after_a_refresh(
    front: CallStore, sql_store: SqlStore, tmp_path: Path
) -> None:
    other = open_store(Settings(data_dir=tmp_path), SUPPRESSING)  # another worker or replica
    try:
        other.record_cards([_card("c9", patient="pk-9")])
        other.save_feedback("svc", [_override("c9")], _received())
    finally:
        other.close()
    since = NOW - timedelta(days=30)
    assert _suppressed(front, "pk-9", ["rule-a"], since) == set()  # not yet re-read
    front.refresh()
    assert _suppressed(front, "pk-9", ["rule-a"], since) == {"rule-a"}
    front.refresh()  # incremental refreshes keep what was read before
    assert _suppressed(front, "pk-9", ["rule-a"], since) == {"rule-a"}


def test_start_loads_dismissals_already_in_the_database(sql_store: SqlStore) -> None:
    sql_store.record_cards([_card("c1"), _card("old", rule="rule-old")])
    sql_store.save_feedback("svc", [_override("c1")], _received())
    sql_store.save_feedback("svc", [_override("old", when=NOW - timedelta(days=90))], _received())
    call_store = CallStore(sql_store, window_days=30, refresh_seconds=3600)
    call_store.start()
    try:
        since = NOW - timedelta(days=365)
        assert _suppressed(call_store, "pk-1", ["rule-a", "rule-old"], since) == {"rule-a"}
    finally:
        call_store.close()


class _BrokenWrites(SqlStore):
    def record_cards(self, cards: Sequence[ShownCard]) -> None:
        raise RuntimeError("database gone")


def test_a_failed_write_is_logged_and_does_not_stop_the_writer(sql_store: SqlStore) -> None:
    broken = _BrokenWrites(sql_store.engine, SUPPRESSING)
    call_store = CallStore(broken, window_days=30, refresh_seconds=3600)
    call_store.start()
    try:
        call_store.record_cards([_card("c1")])
        call_store.flush()
        call_store.record_cards([_card("c2")])
        call_store.flush()
        assert call_store._thread is not None
        assert call_store._thread.is_alive()
    finally:
        call_store.close()
    assert _rows(sql_store) == {}


class _SwitchableWrites(SqlStore):
    broken = True

    def record_cards(self, cards: Sequence[ShownCard]) -> None:
        if self.broken:
            raise OperationalError("INSERT", {}, Exception("database gone"))
        super().record_cards(cards)


def test_an_outage_keeps_cards_within_a_bound_counts_drops_and_writes_the_rest_later(
    sql_store: SqlStore,
) -> None:
    switchable = _SwitchableWrites(sql_store.engine, SUPPRESSING)
    dropped: list[int] = []
    call_store = CallStore(
        switchable,
        window_days=30,
        refresh_seconds=3600,
        max_pending=5,
        retry_seconds=0.05,
        on_drop=dropped.append,
    )
    call_store.start()
    try:
        call_store.record_cards([_card(f"c{i}") for i in range(4)])
        call_store.flush()
        assert call_store.failing
        call_store.record_cards([_card(f"c{i}") for i in range(4, 8)])  # 8 > 5: 3 dropped
        assert sum(dropped) == call_store.dropped == 3
        with pytest.raises(ServiceUnavailable):
            call_store.save_feedback("svc", [_override("c7")], _received())
        switchable.broken = False  # back: feedback first writes the kept cards, then itself
        assert call_store.save_feedback("svc", [_override("c7")], _received()) == 1
        assert not call_store.failing
    finally:
        call_store.close()
    assert sorted(_rows(sql_store)) == [f"c{i}" for i in range(3, 8)]  # the 5 newest


def _firing_request(knowledge: Knowledge) -> tuple[str, dict[str, Any]]:
    (service,) = knowledge.services_for("patient-view")[:1]
    scenario = next(s for s in example_patients() if s.id == "breast-cancer-new-back-pain")
    body = request_from_resources(
        bundle_resources(scenario.bundle),
        service.prefetch,
        hook="patient-view",
        hook_instance="call-store-test",
    )
    return service.spec.id, body


def test_override_through_the_api_hides_the_card_on_the_next_call(
    settings: Settings, knowledge: Knowledge
) -> None:
    service_id, body = _firing_request(knowledge)
    with TestClient(create_app(settings, knowledge=knowledge)) as client:
        first = client.post(f"/cds-services/{service_id}", json=body).json()["cards"]
        card = next(
            c for c in first if c["source"]["topic"]["code"] == "bone-pain-after-breast-cancer"
        )
        item = {
            "card": card["uuid"],
            "outcome": "overridden",
            "overrideReason": {"reason": card["overrideReasons"][0]},
            "outcomeTimestamp": datetime.now(UTC).isoformat(),
        }
        assert card["overrideReasons"][0]["code"] == "already-addressed"
        response = client.post(f"/cds-services/{service_id}/feedback", json={"feedback": [item]})
        assert response.json() == {"received": 1, "new": 1}
        body["hookInstance"] = "call-store-test-2"
        second = client.post(f"/cds-services/{service_id}", json=body).json()["cards"]
    rules = [c["source"]["topic"]["code"] for c in second]
    assert "bone-pain-after-breast-cancer" not in rules
    assert len(second) == len(first) - 1


PG_URL = os.environ.get("CDS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def postgres_settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings whose database is a fresh PostgreSQL schema, dropped afterwards."""
    admin = create_engine(
        "postgresql+psycopg://" + PG_URL.removeprefix("postgresql://"),
        connect_args={"connect_timeout": 2},
    )
    schema = f"call_store_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError:
        admin.dispose()
        pytest.skip(f"no PostgreSQL answers at {PG_URL}")
    try:
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        yield Settings(data_dir=tmp_path, database_url=url)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.postgres
def test_the_front_works_on_postgresql(postgres_settings: Settings) -> None:
    store = open_store(postgres_settings, SUPPRESSING)
    other = open_store(postgres_settings, SUPPRESSING)
    call_store = CallStore(store, window_days=30, refresh_seconds=3600)
    call_store.start()
    try:
        call_store.record_cards([_card("c1"), _card("c1"), _card("c2", rule="rule-b")])
        call_store.flush()
        assert _rows(store) == {"c1": "rule-a", "c2": "rule-b"}  # the duplicate is ignored
        assert call_store.save_feedback("svc", [_override("c1")], _received()) == 1
        since = NOW - timedelta(days=30)
        assert _suppressed(call_store, "pk-1", ["rule-a", "rule-b"], since) == {"rule-a"}
        other.record_cards([_card("c9", patient="pk-9")])
        other.save_feedback("svc", [_override("c9")], _received())
        call_store.refresh()
        assert _suppressed(call_store, "pk-9", ["rule-a"], since) == {"rule-a"}
    finally:
        call_store.close()
        other.close()
        store.close()
