"""Per-rule feedback numbers: the function, GET /analytics/feedback and `cds feedback report`,
on SQLite and PostgreSQL, from a known set of shown cards and feedback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from cds.app import create_app
from cds.cli import main
from cds.kb.loader import Knowledge
from cds.protocol.wire import FeedbackItem
from cds.settings import Settings
from cds.store.analytics import RuleFeedbackStats, rule_feedback_stats
from cds.store.protocol import ShownCard
from cds.store.sql import SqlStore, open_store

SINCE = datetime(2026, 3, 1, tzinfo=UTC)
UNTIL = datetime(2026, 4, 1, tzinfo=UTC)
NOT_RELEVANT = ("not-clinically-relevant", "Not clinically relevant for this patient")
ADDRESSED = ("already-addressed", "Already addressed or in progress")


def shown(card: str, rule: str, version: str, at: datetime) -> ShownCard:
    return ShownCard(
        card_uuid=card,
        service_id="svc",
        rule_id=rule,
        rule_version=version,
        hook="patient-view",
        hook_instance=f"hi-{card}",
        indicator="warning",
        patient_key="0" * 64,
        shown_at=at,
    )


def item(card: str, outcome: str, at: str, reason: tuple[str, str] | None = None) -> FeedbackItem:
    data: dict[str, Any] = {"card": card, "outcome": outcome, "outcomeTimestamp": at}
    if reason:
        code, display = reason
        data["overrideReason"] = {"reason": {"system": "urn:x", "code": code, "display": display}}
    return FeedbackItem.model_validate(data)


@pytest.fixture
def seeded(db_settings: Settings) -> Iterator[SqlStore]:
    store = open_store(db_settings)
    day = timedelta(days=1)
    store.record_cards(
        [
            shown("a1", "rule-a", "1.0.0", SINCE + day),
            shown("a2", "rule-a", "1.0.0", SINCE + 2 * day),
            shown("a3", "rule-a", "1.1.0", SINCE + 3 * day),
            shown("a4", "rule-a", "1.1.0", SINCE + 4 * day),
            shown("a5", "rule-a", "1.1.0", SINCE),  # the window includes its start
            shown("b1", "rule-b", "2.0.0", SINCE + day),
            shown("b-before", "rule-b", "2.0.0", SINCE - day),  # outside
            shown("b-after", "rule-b", "2.0.0", UNTIL),  # outside: the end is exclusive
        ]
    )
    store.save_feedback(
        "svc",
        [
            item("a1", "accepted", "2026-03-02T10:00:00Z"),
            item("a2", "overridden", "2026-03-03T10:00:00Z", NOT_RELEVANT),
            item("a3", "overridden", "2026-03-04T10:00:00Z", NOT_RELEVANT),
            # a4: accepted, then overridden: the latest report counts
            item("a4", "accepted", "2026-03-05T10:00:00Z"),
            item("a4", "overridden", "2026-03-06T10:00:00Z", ADDRESSED),
            item("a5", "overridden", "2026-03-01T10:00:00Z"),  # no reason given
            item("b-before", "accepted", "2026-02-28T12:00:00Z"),
            item("unknown-card", "accepted", "2026-03-02T10:00:00Z"),
        ],
        datetime.now(UTC),
    )
    yield store
    store.close()


EXPECTED = [
    {
        "rule_id": "rule-a",
        "rule_versions": ["1.0.0", "1.1.0"],
        "shown": 5,
        "accepted": 1,
        "overridden": 4,
        "acceptance_rate": 0.2,
        "top_override_reasons": [
            {"code": NOT_RELEVANT[0], "display": NOT_RELEVANT[1], "count": 2},
            {"code": ADDRESSED[0], "display": ADDRESSED[1], "count": 1},
        ],
    },
    {
        "rule_id": "rule-b",
        "rule_versions": ["2.0.0"],
        "shown": 1,
        "accepted": 0,
        "overridden": 0,
        "acceptance_rate": 0.0,
        "top_override_reasons": [],
    },
]


def test_the_numbers(seeded: SqlStore) -> None:
    stats = rule_feedback_stats(seeded, SINCE, UNTIL)
    assert [row.as_json() for row in stats] == EXPECTED
    rule_a = stats[0]
    assert isinstance(rule_a, RuleFeedbackStats)
    assert rule_a.rule_version == "1.0.0, 1.1.0"
    assert rule_a.top_override_reasons[0] == (*NOT_RELEVANT, 2)
    assert rule_feedback_stats(seeded.engine, SINCE, UNTIL) == stats  # an Engine works too


def test_an_empty_window_and_the_top_reasons_limit(seeded: SqlStore) -> None:
    assert rule_feedback_stats(seeded, UNTIL + timedelta(days=1), UNTIL + timedelta(days=2)) == []
    (rule_a, _) = rule_feedback_stats(seeded, SINCE, UNTIL, top_reasons=1)
    assert [code for code, _, _ in rule_a.top_override_reasons] == [NOT_RELEVANT[0]]


def test_a_window_given_in_another_time_zone(seeded: SqlStore) -> None:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("America/New_York")
    stats = rule_feedback_stats(seeded, SINCE.astimezone(tz), UNTIL.astimezone(tz))
    assert [row.as_json() for row in stats] == EXPECTED


def test_the_json_route(seeded: SqlStore, db_settings: Settings, knowledge: Knowledge) -> None:
    with TestClient(create_app(db_settings, knowledge=knowledge)) as client:
        response = client.get(
            "/analytics/feedback", params={"since": "2026-03-01", "until": "2026-04-01T00:00:00Z"}
        )
        assert response.status_code == 200
        assert response.json() == {
            "since": "2026-03-01T00:00:00+00:00",
            "until": "2026-04-01T00:00:00+00:00",
            "rules": EXPECTED,
        }
        bad = client.get("/analytics/feedback", params={"since": "last tuesday"})
        assert bad.status_code == 400
        assert "since must be a date" in bad.json()["issue"][0]["diagnostics"]
        backwards = client.get(
            "/analytics/feedback", params={"since": "2026-04-01", "until": "2026-03-01"}
        )
        assert backwards.status_code == 400
        default_window = client.get("/analytics/feedback").json()
        until = datetime.fromisoformat(default_window["until"])
        assert until - datetime.fromisoformat(default_window["since"]) == timedelta(days=30)


def test_the_report_command(
    seeded: SqlStore,
    db_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CDS_DATA_DIR", str(db_settings.data_dir))
    if db_settings.database_url:
        monkeypatch.setenv("CDS_DATABASE_URL", db_settings.database_url)
    else:
        monkeypatch.delenv("CDS_DATABASE_URL", raising=False)
    window = ["--since", "2026-03-01", "--until", "2026-04-01"]
    assert main(["feedback", "report", "--json", *window]) == 0
    assert orjson.loads(capsys.readouterr().out)["rules"] == EXPECTED
    assert main(["feedback", "report", *window]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split() == [
        "rule",
        "version",
        "shown",
        "accepted",
        "overridden",
        "accept",
        "%",
        "top",
        "override",
        "reasons",
    ]
    assert table[2].startswith("rule-a")
    assert "5" in table[2].split()
    assert "Not clinically relevant for this patient (2)" in table[2]
    assert main(["feedback", "report", "--since", "soon"]) == 2
    assert "since must be a date" in capsys.readouterr().err
